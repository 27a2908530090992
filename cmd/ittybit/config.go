package main

import (
	"bytes"
	"fmt"
	"os"
	"time"

	"go.yaml.in/yaml/v3"
)

// serverFile is the YAML config file of `ittybit server`; flags override it.
type serverFile struct {
	NodeID        string   `yaml:"node_id"`
	HTTP          string   `yaml:"http"`
	HTTPAdvertise string   `yaml:"http_advertise"`
	Raft          string   `yaml:"raft"`
	RaftAdvertise string   `yaml:"raft_advertise"`
	Data          string   `yaml:"data"`
	Bootstrap     bool     `yaml:"bootstrap"`
	Join          []string `yaml:"join"`
	// BootstrapExpect forms a cluster of this many voters, found through
	// Join; LeaveOnTerminate leaves it on SIGTERM; DNSServer resolves
	// Join's names.
	BootstrapExpect    int      `yaml:"bootstrap_expect"`
	LeaveOnTerminate   bool     `yaml:"leave_on_terminate"`
	DNSServer          string   `yaml:"dns_server"`
	Storage            string   `yaml:"storage"`
	AllowPrivateInputs bool     `yaml:"allow_private_inputs"`
	RateLimit          *float64 `yaml:"rate_limit"`
	// SealKeyFile holds the keys that seal S3 connections' secrets (one a
	// line, the first seals); $ITTYBIT_SEAL_KEY instead gives them
	// comma-separated. FleetBuckets are the buckets the fleet's own S3
	// identity serves to every project without a connection.
	SealKeyFile  string   `yaml:"seal_key_file"`
	FleetBuckets []string `yaml:"fleet_buckets"`
	// QueueMetricsProjects labels the queue's depth by project for that
	// many projects (those with the most queued; the rest as other).
	QueueMetricsProjects int `yaml:"queue_metrics_projects"`
	// SplitSeconds splits a long video task into parts of about this many
	// seconds that encode on several agents (0: never); SplitMinSeconds is
	// the shortest source split.
	SplitSeconds    *float64 `yaml:"split_seconds"`
	SplitMinSeconds *float64 `yaml:"split_min_seconds"`
	// EventRetention is how long events are kept ("720h"; "0": forever).
	EventRetention *time.Duration `yaml:"event_retention"`
	// EventLimit is the most events kept (0: no bound).
	EventLimit *int `yaml:"event_limit"`
	// TaskRetention is how long finished tasks stay in memory before they
	// retire to the archive ("720h"; "0": forever).
	TaskRetention *time.Duration `yaml:"task_retention"`
	LogLevel      string         `yaml:"log_level"`
	// APIKeys and NodeTokens are SHA-256 hashes (hex) of the accepted
	// credentials: `ittybit hash-key` prints one.
	APIKeys    []string `yaml:"api_keys"`
	NodeTokens []string `yaml:"node_tokens"`
	// NodeToken is the plaintext token this server presents when joining.
	NodeToken string   `yaml:"node_token"`
	S3        s3Config `yaml:"s3"`
}

// s3Config configures S3-compatible storage, for servers and agents.
type s3Config struct {
	Endpoint  string `yaml:"endpoint"`
	Region    string `yaml:"region"`
	PathStyle bool   `yaml:"path_style"`
}

// loadYAML reads a YAML config file strictly: an unknown key is an error
// (a typo must not silently leave a setting at its default).
func loadYAML(path string, into any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(into); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}
