package httpapi

import (
	"github.com/ittybit-oss/ittybit/controlplane/api"
	"github.com/ittybit-oss/ittybit/encoders"
)

func obj(required []string, props map[string]any) map[string]any {
	o := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		o["required"] = required
	}
	return o
}

// describe adds a description to a schema.
func describe(schema map[string]any, desc string) map[string]any {
	schema["description"] = desc
	return schema
}

func typ(t string, desc string) map[string]any {
	return map[string]any{"type": t, "description": desc}
}

func nullable(t string, desc string) map[string]any {
	return map[string]any{"type": []string{t, "null"}, "description": desc}
}

func enum(desc string, values []string) map[string]any {
	return map[string]any{"type": "string", "enum": values, "description": desc}
}

func strs[T ~string](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// schemas are the JSON Schemas of the wire types; openapi_test.go checks
// them against the Go types' JSON fields.
func schemas() map[string]any {
	dimension := map[string]any{"oneOf": []any{
		map[string]any{"type": "integer", "minimum": 1, "maximum": encoders.MaxDimension, "description": "Pixels."},
		map[string]any{"type": "string", "pattern": `^[0-9]+(\.[0-9]+)?%$`, "description": `A percentage of the source, such as "50%".`},
	}}
	var formats []string
	for _, k := range encoders.Kinds {
		formats = append(formats, encoders.Formats(k)...)
	}
	msTime := func(desc string) map[string]any { return nullable("integer", desc+" (epoch milliseconds), or null.") }
	return map[string]any{
		"Options": map[string]any{
			"type": "object", "additionalProperties": false,
			"description": "Processing options; which apply depends on the kind (video: all; audio: format, quality, bitrate, start, end; image: format, quality, width, height, fit, position, background, start; adaptive_video: all but codec, fps and bitrate).",
			"properties": map[string]any{
				"format":     enum("Output format for the kind.", formats),
				"codec":      enum("Video codec (video only): h264, h265 in mp4/mov; vp9 in webm; av1 in mp4/webm.", encoders.VideoCodecs),
				"quality":    enum("Quality level.", strs(encoders.Qualities)),
				"width":      dimension,
				"height":     dimension,
				"fit":        enum("How the picture fills width × height.", encoders.Fits),
				"position":   enum("Where a contained picture sits, or a covered one is cropped.", encoders.Positions),
				"background": map[string]any{"type": "string", "pattern": "^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$", "description": "Bar color with fit contain."},
				"fps":        map[string]any{"type": "number", "minimum": encoders.MinFPS, "maximum": encoders.MaxFPS},
				"bitrate":    map[string]any{"type": "integer", "minimum": encoders.MinAudioBitrate, "maximum": encoders.MaxVideoBitrate, "description": "Bits per second: video 300000–60000000, audio 32000–320000."},
				"start":      map[string]any{"type": "number", "minimum": 0, "maximum": encoders.MaxSeconds, "description": "Seconds; for an image, the frame time."},
				"end":        map[string]any{"type": "number", "exclusiveMinimum": 0, "maximum": encoders.MaxSeconds, "description": "Seconds, after start."},
			},
		},
		"CreateTaskRequest": obj([]string{"input", "kind"}, map[string]any{
			"input":    typ("string", "Source URL: http://, https:// or s3://."),
			"kind":     enum("What to make.", taskKinds),
			"options":  ref("Options"),
			"output":   typ("string", "Destination, s3://bucket/key; managed storage when absent."),
			"metadata": map[string]any{"type": "object", "description": "Arbitrary key-value pairs, returned as given."},
			"priority": enum("The task's place in the queue: higher first; default the API key's (normal for the operator's).", []string{"low", "normal", "high"}),
		}),
		"Error": obj([]string{"kind", "message"}, map[string]any{
			"kind":    typ("string", "What went wrong, for programs: input_required, invalid_input, invalid_kind, invalid_format, invalid_codec, invalid_option, invalid_output, invalid_json, invalid_scope, unknown_project, connection_required, connection_failed, token_missing, token_invalid, csrf_failed, forbidden, not_found, cursor_expired, idempotency_conflict, task_finished, payload_too_large, request_timeout, rate_limited, unavailable; on steps also input_blocked, fetch_failed, input_too_large, invalid_media, unsupported_media, encode_failed, upload_failed, stalled, cancelled, internal."),
			"message": typ("string", "What was wrong and what is accepted, for people."),
			"field":   typ("string", "The request field or option at fault, when the problem is about one (input, width, …); with several problems, each names its own in errors."),
			"errors": map[string]any{"type": "array", "description": "Each problem, when there were several.", "items": obj([]string{"kind", "message"}, map[string]any{
				"kind": typ("string", "The problem's kind."), "field": typ("string", "The field or option at fault."), "message": typ("string", "The problem."),
			})},
		}),
		"File": obj([]string{"object", "kind", "url"}, map[string]any{
			"object": enum("Always file.", []string{"file"}), "kind": typ("string", "video, audio, image or adaptive_video."),
			"url": typ("string", "Where the file is."), "format": typ("string", "Container or image format."),
			"codec": typ("string", "Main codec."), "width": typ("integer", "Pixels."), "height": typ("integer", "Pixels."),
			"duration": typ("number", "Seconds."), "fps": typ("number", "Frames per second."),
			"filesize": typ("integer", "Bytes."), "bitrate": typ("integer", "Bits per second."),
			"renditions": map[string]any{"type": "array", "items": ref("File"), "description": "The variants of an HLS result."},
		}),
		"Part": obj([]string{"id", "object", "index", "kind", "rendition", "start", "end", "status", "progress", "node", "attempt", "started_at", "finished_at"}, map[string]any{
			"id": typ("string", "The step's id and .p<index>."), "object": enum("Always part.", []string{"part"}),
			"index":       typ("integer", "Its place among the step's parts, from 0."),
			"kind":        enum("video: a run of the picture's frames; audio: the whole sound track, encoded once; rendition: one rendition of an HLS ladder, whole, or (with first_frame and frames) a run of its whole segments when a long ladder is also split in time.", []string{"video", "audio", "rendition"}),
			"rendition":   nullable("integer", "The HLS rendition it encodes; null for the parts of one file."),
			"start":       typ("number", "Where it starts, in seconds of the source."),
			"end":         typ("number", "Where it ends, in seconds of the source."),
			"status":      enum("Where the part is.", stepStatuses),
			"progress":    map[string]any{"type": []string{"number", "null"}, "minimum": 0, "maximum": 1, "description": "null until the part runs, then 0 to 1."},
			"node":        nullable("string", "The agent running or having run it."),
			"attempt":     typ("integer", "Which try this is: 1, 2, …; 0 before the first."),
			"started_at":  msTime("When it started"),
			"finished_at": msTime("When it ended"),
			"error":       ref("Error"),
			"backup": describe(obj([]string{"node", "attempt", "started_at"}, map[string]any{
				"node":       typ("string", "The agent running the backup."),
				"attempt":    typ("integer", "The backup's attempt: the part's next."),
				"started_at": map[string]any{"type": "integer", "description": "When the backup started (epoch ms)."},
			}), "A second copy of the part, started on another agent because this one ran far longer than the step's other parts; the first to finish wins and the part then shows its node and attempt. Absent when none runs."),
			"first_frame": typ("integer", "A video part, or a run of a rendition: the index of its first frame in the source."),
			"frames":      typ("integer", "A video part, or a run of a rendition: how many frames it holds."),
		}),
		"Step": obj([]string{"id", "object", "kind", "input", "options", "output", "status", "progress", "error", "created_at", "started_at", "finished_at", "updated_at", "node", "attempt", "parts"}, map[string]any{
			"id": typ("string", "step_…"), "object": enum("Always step.", []string{"step"}),
			"kind":       typ("string", "probe, ingest, the task's kind, or upload."),
			"input":      map[string]any{"description": "What the step read, or null."},
			"options":    map[string]any{"type": "object", "description": "What the step resolved (the encode step: sizes, rate control, encoder)."},
			"output":     map[string]any{"description": "null until completed; then a probe object (probe) or a File."},
			"status":     enum("Where the step is.", stepStatuses),
			"progress":   map[string]any{"type": []string{"number", "null"}, "minimum": 0, "maximum": 1, "description": "null until the step runs, then 0 to 1."},
			"error":      map[string]any{"oneOf": []any{map[string]any{"type": "null"}, ref("Error")}},
			"created_at": typ("integer", "Epoch milliseconds."), "started_at": msTime("When it started"),
			"finished_at": msTime("When it ended"), "updated_at": typ("integer", "Epoch milliseconds."),
			"node":    nullable("string", "The agent running or having run it."),
			"attempt": typ("integer", "Which try this is: 1, 2, …; 0 before the first."),
			"parts": map[string]any{"oneOf": []any{map[string]any{"type": "null"}, map[string]any{"type": "array", "items": ref("Part")}},
				"description": "A split encode step's parts, each run on its own node, then stitched by the step; null when the step is not split."},
		}),
		"Task": obj([]string{"id", "object", "kind", "input", "output", "options", "metadata", "status", "error", "steps", "created_at", "started_at", "finished_at", "updated_at"}, map[string]any{
			"id": typ("string", "task_…"), "object": enum("Always task.", []string{"task"}),
			"kind": enum("What it makes.", taskKinds), "input": typ("string", "The source URL."),
			"output":     nullable("string", "The destination URL; null until completed when none was given."),
			"options":    ref("Options"),
			"metadata":   map[string]any{"type": "object", "description": "As given."},
			"status":     enum("Where the task is.", taskStatuses),
			"error":      map[string]any{"oneOf": []any{map[string]any{"type": "null"}, ref("Error")}},
			"steps":      map[string]any{"type": "array", "items": ref("Step"), "minItems": 4, "maxItems": 4},
			"created_at": typ("integer", "Epoch milliseconds."), "started_at": msTime("When its first step started"),
			"finished_at": msTime("When it ended"), "updated_at": typ("integer", "Epoch milliseconds."),
			"archived": typ("boolean", "Present and true on a task read from the archive: it finished longer ago than the servers' --task-retention."),
			"project":  typ("string", "The project of the key that created it (proj_…); absent for tasks of the operator's keys."),
			"priority": enum("Its place in the queue; absent: normal.", []string{"low", "normal", "high"}),
		}),
		"Project": obj([]string{"id", "object", "name", "weight", "max_concurrent_tasks", "created_at"}, map[string]any{
			"id": typ("string", "proj_…"), "object": enum("Always project.", []string{"project"}),
			"name": typ("string", "1 to 100 characters."), "created_at": typ("integer", "Epoch ms."),
			"weight":               typ("integer", "Its share of the fleet against the other projects at the same priority (weighted round robin)."),
			"max_concurrent_tasks": typ("integer", "The most of its tasks running at once; the rest wait in the queue (0: no cap)."),
		}),
		"ProjectRequest": obj([]string{"name"}, map[string]any{
			"name":                 typ("string", "1 to 100 printable characters."),
			"weight":               map[string]any{"type": "integer", "minimum": 1, "maximum": 100, "default": 1, "description": "Its share of the fleet against the other projects at the same priority."},
			"max_concurrent_tasks": map[string]any{"type": "integer", "minimum": 0, "default": 0, "description": "The most of its tasks running at once; the rest wait (0: no cap)."},
		}),
		"ProjectList": obj([]string{"object", "data", "has_more"}, map[string]any{
			"object": enum("Always list.", []string{"list"}), "data": map[string]any{"type": "array", "items": ref("Project")},
			"has_more": typ("boolean", "Always false: every project the key sees is listed."),
		}),
		"Key": obj([]string{"id", "object", "name", "project", "scopes", "rate_limit", "priority", "prefix", "created_at"}, map[string]any{
			"id": typ("string", "key_…"), "object": enum("Always key.", []string{"key"}),
			"name": typ("string", "1 to 100 characters."), "project": typ("string", "The project it belongs to (proj_…)."),
			"scopes": map[string]any{"type": "array", "items": enum("A scope.", []string{"tasks:read", "tasks:write", "admin"}),
				"description": "tasks:read: GET /tasks, /tasks/{id}, /events; tasks:write: POST /tasks, cancel; admin: its project's keys and webhook endpoints."},
			"rate_limit": typ("number", "Requests per second (bursts of twice that); 0: the server's --rate-limit."),
			"priority":   enum("The priority of its tasks that name none.", []string{"low", "normal", "high"}),
			"prefix":     typ("string", "The secret's first 11 characters, to tell keys apart."),
			"secret":     typ("string", "ik_ and 52 characters: shown only in the answer of POST /keys; the cluster keeps only its SHA-256."),
			"created_at": typ("integer", "Epoch ms."),
		}),
		"KeyRequest": obj([]string{"name"}, map[string]any{
			"name":       typ("string", "1 to 100 printable characters."),
			"project":    typ("string", "The project (proj_…): required with an operator's key; a project's key makes keys of its own project only."),
			"scopes":     map[string]any{"type": "array", "items": enum("A scope.", []string{"tasks:read", "tasks:write", "admin"}), "description": "Default: tasks:read and tasks:write."},
			"rate_limit": typ("number", "Requests per second, 0 to 100000; 0 (the default): the server's --rate-limit."),
			"priority":   enum("The priority of its tasks that name none (default normal).", []string{"low", "normal", "high"}),
		}),
		"Connection": obj([]string{"id", "object", "name", "project", "kind", "bucket", "endpoint", "region", "path_style", "access_key_id", "created_at", "updated_at"}, map[string]any{
			"id": typ("string", "conn_…"), "object": enum("Always connection.", []string{"connection"}),
			"name": typ("string", "1 to 100 characters."), "project": typ("string", "The project whose tasks use it (proj_…)."),
			"kind": enum("The kind of storage.", []string{"s3"}), "bucket": typ("string", "The bucket: tasks of the project whose input or output is s3://<bucket>/… use this connection."),
			"endpoint":      typ("string", "An S3-compatible server's base URL; empty: AWS. Public addresses only, unless the servers run with --allow-private-inputs."),
			"region":        typ("string", "The region requests are signed for; empty: us-east-1."),
			"path_style":    typ("boolean", "Address the bucket as endpoint/bucket (most S3-compatible servers)."),
			"access_key_id": typ("string", "The access key id (the secret access key is never shown)."),
			"created_at":    typ("integer", "Epoch ms."), "updated_at": typ("integer", "Epoch ms."),
		}),
		"ConnectionRequest": obj(nil, map[string]any{
			"name": typ("string", "1 to 100 printable characters (required to create)."), "project": typ("string", "The project (create only; required with an operator's key)."),
			"kind": enum("Create only; required.", []string{"s3"}), "bucket": typ("string", "Create only; required: an S3 bucket name."),
			"endpoint": typ("string", "An http(s) base URL, at most 2048 bytes."), "region": typ("string", "At most 64 bytes."),
			"path_style":        typ("boolean", "Path-style addressing."),
			"access_key_id":     typ("string", "1 to 128 bytes (required to create)."),
			"secret_access_key": typ("string", "1 to 256 bytes (required to create); sealed before it is stored, never shown."),
		}),
		"ConnectionList": obj([]string{"object", "data", "has_more"}, map[string]any{
			"object": enum("Always list.", []string{"list"}), "data": map[string]any{"type": "array", "items": ref("Connection")},
			"has_more": typ("boolean", "Always false: every connection the caller sees is listed."),
		}),
		"KeyList": obj([]string{"object", "data", "has_more"}, map[string]any{
			"object": enum("Always list.", []string{"list"}), "data": map[string]any{"type": "array", "items": ref("Key")},
			"has_more": typ("boolean", "Always false: every key the caller sees is listed."),
		}),
		"Event": obj([]string{"id", "object", "type", "created_at", "data"}, map[string]any{
			"id":         typ("string", "evt_ and 16 hex digits; ids sort in the order events happened (the replicated log's)."),
			"object":     enum("Always event.", []string{"event"}),
			"type":       enum("What happened.", eventTypes()),
			"created_at": typ("integer", "When it happened, epoch milliseconds."),
			"step": obj([]string{"id", "kind", "attempt"}, map[string]any{
				"id": typ("string", "The step."), "kind": typ("string", "Its kind."), "attempt": typ("integer", "The attempt that completed, failed or will be retried."),
			}),
			"data": map[string]any{"description": "The task as GET /tasks/{id} showed it then, without signed URLs; for webhook.disabled, the endpoint (without its secret).",
				"oneOf": []any{ref("Task"), ref("Webhook")}},
		}),
		"Webhook": obj([]string{"id", "object", "url", "events", "description", "status", "failing_since", "created_at", "updated_at"}, map[string]any{
			"id":              typ("string", "wh_…"),
			"object":          enum("Always webhook.", []string{"webhook"}),
			"url":             typ("string", "Where events are posted: a public http(s) address (private ones only on a server started with --allow-private-inputs)."),
			"events":          map[string]any{"type": "array", "items": typ("string", "An event type, or * for all."), "description": "The event types delivered."},
			"description":     typ("string", "Free text, at most 500 bytes."),
			"status":          enum("Whether events are delivered.", []string{"enabled", "disabled"}),
			"disabled_reason": typ("string", "Why it was disabled: 410 Gone, five days of failures, or by hand."),
			"secret":          typ("string", "whsec_ and base64 of 32 bytes: shown only when made (create, rotate)."),
			"failing_since":   nullable("integer", "The first failed attempt since the last delivered one, epoch ms."),
			"created_at":      typ("integer", "Epoch ms."),
			"updated_at":      typ("integer", "Epoch ms."),
		}),
		"WebhookRequest": obj(nil, map[string]any{
			"url":         typ("string", "An http:// or https:// URL (required to create)."),
			"events":      map[string]any{"type": "array", "items": typ("string", "An event type, or * for all."), "description": "The event types to deliver (required to create)."},
			"description": typ("string", "Free text, at most 500 bytes."),
			"status":      enum("enabled or disabled (changes only).", []string{"enabled", "disabled"}),
		}),
		"WebhookList": obj([]string{"object", "data", "has_more"}, map[string]any{
			"object": enum("Always list.", []string{"list"}), "data": map[string]any{"type": "array", "items": ref("Webhook")},
			"has_more": typ("boolean", "Always false: every endpoint is listed."),
		}),
		"Delivery": obj([]string{"id", "object", "webhook", "event_id", "event_type", "status", "next_attempt_at", "created_at", "attempts"}, map[string]any{
			"id":              typ("string", "dlv_… (an event to an endpoint) or msg_… (a test message)."),
			"object":          enum("Always delivery.", []string{"delivery"}),
			"webhook":         typ("string", "The endpoint."),
			"event_id":        typ("string", "The webhook-id header of every attempt: the event's id."),
			"event_type":      typ("string", "The event's type."),
			"status":          enum("Where it stands.", []string{"pending", "delivered", "failed"}),
			"next_attempt_at": nullable("integer", "When a pending delivery is tried next, epoch ms."),
			"created_at":      typ("integer", "Epoch ms."),
			"attempts": map[string]any{"type": "array", "description": "Every attempt, oldest first.", "items": obj([]string{"at", "status_code", "latency_ms", "result"}, map[string]any{
				"at": typ("integer", "Epoch ms."), "status_code": typ("integer", "The answer's status; 0 when none came."),
				"latency_ms": typ("integer", "How long the answer took."),
				"result":     enum("What it came to.", []string{"delivered", "failed", "throttled", "gone", "blocked"}),
				"error":      typ("string", "Why it failed."),
			})},
		}),
		"DeliveryList": obj([]string{"object", "data", "has_more"}, map[string]any{
			"object": enum("Always list.", []string{"list"}), "data": map[string]any{"type": "array", "items": ref("Delivery")},
			"has_more": typ("boolean", "Whether older deliveries were left out."),
		}),
		"EventList": obj([]string{"object", "data", "has_more"}, map[string]any{
			"object": enum("Always list.", []string{"list"}), "data": map[string]any{"type": "array", "items": ref("Event")},
			"has_more": typ("boolean", "Whether more events follow: ask again with after set to the last id."),
		}),
		"TaskList": obj([]string{"object", "data", "has_more"}, map[string]any{
			"object": enum("Always list.", []string{"list"}), "data": map[string]any{"type": "array", "items": ref("Task")},
			"has_more": typ("boolean", "Whether more tasks follow in the direction of travel."),
			"archive":  typ("string", "On a page of the tasks kept in memory, where the tasks that left it for the archive are listed: /tasks?archived=true. Absent when the servers keep every task (--task-retention 0)."),
		}),
		"Health": obj([]string{"status"}, map[string]any{
			"status": typ("string", "ok or ready."), "node": typ("string", "This server's node id."), "leader": typ("string", "The leader's node id."),
			"applied_index": typ("integer", "The last Raft entry this server applied (/healthz)."),
		}),
		"Fleet": obj([]string{"object", "servers", "agents", "queue", "throughput"}, map[string]any{
			"object": enum("Always fleet.", []string{"fleet"}),
			"servers": map[string]any{"type": "array", "description": "The control plane's servers.", "items": obj([]string{"id", "http_addr", "leader", "health", "applied_index"}, map[string]any{
				"id": typ("string", "The server's node id."), "http_addr": typ("string", "Where it serves the API."),
				"leader":        typ("boolean", "Whether it is the leader (the server that answered)."),
				"health":        enum("ok when it answered /healthz within a second, else down.", []string{"ok", "down"}),
				"applied_index": typ("integer", "The last Raft entry it applied."),
			})},
			"agents": map[string]any{"type": "array", "description": "The agents.", "items": obj([]string{"name", "status", "slots", "running", "capabilities"}, map[string]any{
				"name": typ("string", "The agent's name."), "status": typ("string", "ready, draining or down."),
				"slots": typ("integer", "Steps it runs at once."), "running": typ("integer", "Steps it runs now."),
				"capabilities": map[string]any{"type": "array", "description": "Each encoder it has, per codec: available or why not.", "items": map[string]any{"type": "object"}},
				"last_seen_ms": typ("integer", "Its last heartbeat, epoch milliseconds."),
				"steps": map[string]any{"type": "array", "description": "The steps and parts it runs now.", "items": obj([]string{"task", "step", "kind", "attempt", "progress"}, map[string]any{
					"task": typ("string", "The task."), "step": typ("string", "The step, or the part."), "kind": typ("string", "The step's kind."),
					"part": typ("integer", "The part's index, for a part of a split step."), "attempt": typ("integer", "The attempt."), "progress": typ("number", "0 to 1."),
				})},
			})},
			"queue":      map[string]any{"type": "object", "description": "Steps ready to run and waiting for a slot, by step kind.", "additionalProperties": map[string]any{"type": "integer"}},
			"throughput": map[string]any{"type": "array", "description": "Media seconds encoded per second, 5 s points over the last ten minutes, oldest first.", "items": obj([]string{"at", "value"}, map[string]any{"at": typ("integer", "The point's start, epoch milliseconds."), "value": typ("number", "Media seconds per second.")})},
		}),
	}
}

// eventTypes lists the event types' names.
func eventTypes() []string {
	var out []string
	for _, t := range api.EventTypes {
		out = append(out, string(t))
	}
	return out
}
