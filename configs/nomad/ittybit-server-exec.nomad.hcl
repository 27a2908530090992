# ittybit control plane on Nomad (1.7 or later) with the exec driver: the
# ittybit binary of the host, isolated by Nomad (chroot, cgroups), no
# container image. Everything else is as in ittybit-server.nomad.hcl (read
# that first): discovery through Consul's DNS, credentials from Nomad
# Variables, one server per host.
#
# Each server host needs the binary at /usr/local/bin/ittybit, a system
# user ittybit, and the host volume for the Raft data owned by it:
#
#   useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin ittybit
#   install -d -o ittybit -g ittybit /opt/ittybit/server
#   client { host_volume "ittybit-server" { path = "/opt/ittybit/server" } }
#
#   nomad var put nomad/jobs/ittybit-server api_key=… node_token=… seal_key=… \
#     aws_access_key_id=… aws_secret_access_key=…
#   nomad job run configs/nomad/ittybit-server-exec.nomad.hcl
job "ittybit-server" {
  type        = "service"
  datacenters = ["*"]

  constraint {
    operator = "distinct_hosts"
    value    = "true"
  }

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
      driver = "exec"
      user   = "ittybit"

      # exec tasks share the host's network: Consul's DNS is on
      # 127.0.0.1:8600.
      config {
        command = "/usr/local/bin/ittybit"
        args = [
          "server",
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
      }

      volume_mount {
        volume      = "data"
        destination = "/data"
      }

      env {
        ITTYBIT_STORAGE   = "s3://ittybit/files"
        AWS_REGION        = "us-east-1"
        ITTYBIT_LOG_LEVEL = "info"
      }

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

      shutdown_delay = "5s"
      kill_signal    = "SIGTERM"
      kill_timeout   = "30s"

      resources {
        cpu        = 500
        memory     = 2048
        memory_max = 4096
      }
    }
  }
}
