# ittybit control plane on Nomad (1.7 or later) with the docker driver:
# three servers on three hosts that form their Raft cluster by themselves.
#
#   nomad var put nomad/jobs/ittybit-server \
#     api_key=$(openssl rand -hex 32) node_token=<the agents' token too> \
#     seal_key=$(openssl rand -hex 32) \
#     aws_access_key_id=… aws_secret_access_key=…
#   nomad job run configs/nomad/ittybit-server.nomad.hcl
#
# Each server host needs a host volume in its Nomad client configuration,
# for the Raft log and snapshots, owned by the image's user:
#
#   client { host_volume "ittybit-server" { path = "/opt/ittybit/server" } }
#   install -d -o 10001 -g 10001 /opt/ittybit/server
#
# How the servers find each other: each registers in Consul as
# ittybit-server-peers (checked on /healthz, so listed before any leader
# exists) and joins through Consul's DNS: --join dns+srv://… asks for the
# SRV records of every server (address and port) again on every try, so
# servers that start in any order, or move, are found. Consul's DNS
# answers on the host's 127.0.0.1:8600 (its default), hence
# network_mode = "host" and --dns-server.
#
# Not Nomad's own service discovery: its {{ range nomadService "…" }}
# templates are rendered once when the task starts, before the other
# servers have registered, and re-rendering them restarts the task, which
# would restart every server whenever one of them moved. Without Consul,
# list the servers' addresses instead: --join=http://10.0.0.11:8080 and
# so on, in every server's args (servers pinned to those hosts).
job "ittybit-server" {
  type        = "service"
  datacenters = ["*"]

  # One server per host: a host that fails takes one vote with it.
  constraint {
    operator = "distinct_hosts"
    value    = "true"
  }

  # One server at a time, each healthy (seeing a leader) before the next.
  update {
    max_parallel     = 1
    health_check     = "checks"
    min_healthy_time = "10s"
    healthy_deadline = "5m"
    auto_revert      = true
  }

  group "server" {
    count = 3

    network {
      port "http" {
        static = 8080
      }
      port "raft" {
        static = 9090
      }
    }

    volume "data" {
      type      = "host"
      source    = "ittybit-server"
      read_only = false
    }

    # For the servers themselves: every running server, ready or not.
    # check_restart is the liveness check: /healthz never depends on a
    # leader, so a lost quorum never restarts every server.
    service {
      name     = "ittybit-server-peers"
      provider = "consul"
      port     = "http"

      check {
        type     = "http"
        path     = "/healthz"
        interval = "10s"
        timeout  = "2s"

        check_restart {
          limit = 3
          grace = "60s"
        }
      }
    }

    # For clients and agents: ready servers only (a leader is known).
    # Consul's DNS leaves out instances whose check fails.
    service {
      name     = "ittybit-server"
      provider = "consul"
      port     = "http"
      tags     = ["metrics"]

      check {
        type     = "http"
        path     = "/readyz"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "server" {
      driver = "docker"

      config {
        image        = "ghcr.io/ittybit-oss/ittybit:latest"
        network_mode = "host"
        # ittybit needs no capability and no set-uid program.
        cap_drop     = ["all"]
        security_opt = ["no-new-privileges"]
        args = [
          "server",
          # Stable across restarts and moves: a server rescheduled onto
          # another host, with an empty volume there, rejoins under the
          # same id and replaces its old entry.
          "--node-id=ittybit-server-${NOMAD_ALLOC_INDEX}",
          "--http=${NOMAD_ADDR_http}",
          "--http-advertise=${NOMAD_ADDR_http}",
          "--raft=${NOMAD_ADDR_raft}",
          "--raft-advertise=${NOMAD_ADDR_raft}",
          "--data=/data",
          "--bootstrap-expect=3",
          "--join=dns+srv://ittybit-server-peers.service.consul",
          "--dns-server=127.0.0.1:8600",
        ]
        # Nomad's checks above are the health: the image's HEALTHCHECK
        # asks 127.0.0.1, where this server does not listen.
        healthchecks {
          disable = true
        }
      }

      volume_mount {
        volume      = "data"
        destination = "/data"
      }

      env {
        ITTYBIT_STORAGE   = "s3://ittybit/files"
        AWS_REGION        = "us-east-1"
        ITTYBIT_LOG_LEVEL = "info"
        # The image lets the NVIDIA runtime give every GPU to a container
        # that asks for none; a server needs none.
        NVIDIA_VISIBLE_DEVICES = "void"
      }

      # Credentials from Nomad Variables (the job may read
      # nomad/jobs/ittybit-server). The task waits until the variable
      # exists. noop: a rotated secret is read at the next restart, not by
      # restarting every server at once.
      template {
        destination = "secrets/ittybit.env"
        env         = true
        change_mode = "noop"
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/ittybit-server" -}}
          ITTYBIT_API_KEY={{ .api_key }}
          ITTYBIT_NODE_TOKEN={{ .node_token }}
          ITTYBIT_SEAL_KEY={{ .seal_key }}
          AWS_ACCESS_KEY_ID={{ .aws_access_key_id }}
          AWS_SECRET_ACCESS_KEY={{ .aws_secret_access_key }}
          {{- end }}
        EOT
      }

      # Out of Consul (no new requests) 5 s before SIGTERM; then a leader
      # hands leadership off, requests in flight finish (up to 5 s) and
      # Raft closes its files.
      shutdown_delay = "5s"
      kill_signal    = "SIGTERM"
      kill_timeout   = "30s"

      # The leader holds events and tasks in memory (configs/server.yaml:
      # event_limit). memory_max applies where memory oversubscription is
      # on in Nomad's scheduler configuration; elsewhere memory is the
      # limit.
      resources {
        cpu        = 500
        memory     = 2048
        memory_max = 4096
      }
    }
  }
}
