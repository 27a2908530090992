package state

import (
	"github.com/hashicorp/go-memdb"
)

// Table names.
const (
	// Tasks are kept outside memdb (tasks.go); the name is their
	// records' in snapshots.
	tableTasks = "tasks"
	// Request keys are kept outside memdb (cow.go); the name is their
	// records' in snapshots.
	tableRequests = "requests"
	tableServers  = "servers"
	tableNodes    = "nodes"
	tableMeta     = "meta"
	// Events are kept outside memdb (eventlog.go); the name is their
	// records' in snapshots.
	tableEvents = "events"
	// Webhook endpoints and their outbox.
	tableWebhooks   = "webhooks"
	tableDeliveries = "deliveries"
	// Projects and their API keys.
	tableProjects = "projects"
	tableKeys     = "keys"
	// S3 connections of projects.
	tableConnections = "connections"
)

func schema() *memdb.DBSchema {
	return &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		tableNodes: {
			Name: tableNodes,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name"}},
			},
		},
		tableMeta: {
			Name: tableMeta,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
			},
		},
		tableWebhooks: {
			Name: tableWebhooks,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
			},
		},
		tableDeliveries: {
			Name: tableDeliveries,
			Indexes: map[string]*memdb.IndexSchema{
				"id":       {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
				"endpoint": {Name: "endpoint", Indexer: &memdb.StringFieldIndex{Field: "EndpointID"}},
				// pending holds only the deliveries still to make, by
				// endpoint and when they are due.
				"pending": {Name: "pending", Unique: true, AllowMissing: true, Indexer: stringIndex[Delivery]{func(d *Delivery) string { return d.PendingKey }}},
				// pending_task holds them by task, oldest event first.
				"pending_task": {Name: "pending_task", Unique: true, AllowMissing: true, Indexer: stringIndex[Delivery]{func(d *Delivery) string { return d.TaskKey }}},
			},
		},
		tableProjects: {
			Name: tableProjects,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
			},
		},
		tableKeys: {
			Name: tableKeys,
			Indexes: map[string]*memdb.IndexSchema{
				"id":   {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
				"hash": {Name: "hash", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Hash"}},
			},
		},
		tableConnections: {
			Name: tableConnections,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
				// bucket: project, NUL, bucket: one connection a bucket in
				// a project.
				"bucket": {Name: "bucket", Unique: true, Indexer: stringIndex[Connection]{func(c *Connection) string { return c.Project + "\x00" + c.Bucket }}},
			},
		},
		tableServers: {
			Name: tableServers,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
			},
		},
	}}
}
