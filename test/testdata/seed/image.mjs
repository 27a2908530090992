const task = {
  input: "https://example.com/video.mp4",
  kind: "image",
  options: {
    start: 5,
    format: "webp",
    width: 640,
  },
};

const res = await fetch("https://api.ittybit.com/tasks", {
  method: "POST",
  headers: {
    Authorization: `Bearer ${process.env.ITTYBIT_API_KEY}`,
    "Content-Type": "application/json",
  },
  body: JSON.stringify(task),
});
const data = await res.json();
