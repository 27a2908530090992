const task = {
  input: "https://example.com/upload.mov",
  kind: "video",
  options: {
    width: 1280,
    height: 720,
    format: "mp4",
    quality: "high",
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
