package storage

import (
	"path"
	"strings"
)

// contentTypes are the media types of the files ittybit makes, by
// extension. Anything else is served as application/octet-stream, never
// sniffed: a managed file must not become a web page.
var contentTypes = map[string]string{
	".m3u8": "application/vnd.apple.mpegurl",
	".m4s":  "video/iso.segment",
	".ts":   "video/mp2t",
	".mp4":  "video/mp4",
	".m4a":  "audio/mp4",
	".webm": "video/webm",
	".mov":  "video/quicktime",
	".mp3":  "audio/mpeg",
	".aac":  "audio/aac",
	".ogg":  "audio/ogg",
	".opus": "audio/ogg; codecs=opus",
	".wav":  "audio/wav",
	".flac": "audio/flac",
	".jpg":  "image/jpeg",
	".jpeg": "image/jpeg",
	".png":  "image/png",
	".webp": "image/webp",
	".gif":  "image/gif",
	".avif": "image/avif",
	".json": "application/json",
}

// contentType returns the media type for name's extension, or "" when it
// is not one ittybit makes.
func contentType(name string) string {
	return contentTypes[strings.ToLower(path.Ext(name))]
}
