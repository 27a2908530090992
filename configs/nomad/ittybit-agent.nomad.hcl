# ittybit encode agents on Nomad (1.7 or later) with the docker driver: a
# system job, so one agent runs on every client that qualifies, and a new
# client gets one when it joins.
#
#   nomad var put nomad/jobs/ittybit-agent node_token=<the servers' token> \
#     aws_access_key_id=… aws_secret_access_key=…
#   nomad job run configs/nomad/ittybit-agent.nomad.hcl
#
# A client takes part only when its configuration says which agent it
# runs (so that ittybit never takes a shared cluster's GPUs by surprise):
#
#   client { meta { ittybit_agent = "nvidia" } }   # or "intel", or "cpu"
#
# NVIDIA clients need the driver, Docker with the NVIDIA Container Toolkit
# (the "nvidia" runtime) and Nomad's nomad-device-nvidia plugin, which
# fingerprints the GPUs as nvidia/gpu; the docker driver runs tasks that
# ask for one with the nvidia runtime. Intel clients need the i915 (or xe)
# driver: the task gets /dev/dri.
#
# Agents find the servers through Consul's DNS (ittybit-server: ready
# servers only, see ittybit-server.nomad.hcl), looked up again whenever
# every server found has failed.
job "ittybit-agent" {
  type        = "system"
  datacenters = ["*"]

  # Nomad stops an agent with SIGTERM; the agent takes no new work, lets
  # running steps finish for --drain-timeout, hands back the rest and
  # exits, within kill_timeout. A Nomad client caps kill_timeout at its
  # max_kill_timeout (30s unless configured): to drain longer, raise that
  # on the clients, then kill_timeout and --drain-timeout together.
  update {
    max_parallel = 1
  }

  group "nvidia" {
    constraint {
      attribute = "${meta.ittybit_agent}"
      value     = "nvidia"
    }

    network {
      port "metrics" {
        static = 9101
      }
    }

    # For Prometheus (consul_sd_configs, tag metrics); configs/alerts.yml
    # expects the job name ittybit-agent.
    service {
      name     = "ittybit-agent"
      provider = "consul"
      port     = "metrics"
      tags     = ["metrics", "nvidia"]
    }

    # Sources and results while steps run (inputs up to
    # --max-input-bytes, 10 GiB, plus their outputs), in MB. A client
    # with less free disk gets no agent: lower it there.
    ephemeral_disk {
      size = 51200
    }

    task "agent" {
      driver = "docker"

      config {
        image        = "ghcr.io/ittybit-oss/ittybit:latest"
        network_mode = "host"
        # ittybit needs no capability and no set-uid program.
        cap_drop     = ["all"]
        security_opt = ["no-new-privileges"]
        args = [
          "agent",
          "--name=${node.unique.name}",
          "--server=dns+srv://ittybit-server.service.consul",
          "--dns-server=127.0.0.1:8600",
          "--work-dir=${NOMAD_ALLOC_DIR}/work",
          "--metrics=${NOMAD_ADDR_metrics}",
          "--drain-timeout=25s",
          "--slots=2",
        ]
        # The image's HEALTHCHECK asks a server's port; an agent serves
        # only --metrics, and Nomad does not act on Docker's health.
        healthchecks {
          disable = true
        }
      }

      env {
        ITTYBIT_STORAGE   = "s3://ittybit/files"
        AWS_REGION        = "us-east-1"
        ITTYBIT_LOG_LEVEL = "info"
        # Which driver libraries the NVIDIA runtime mounts: "video" is
        # NVENC and NVDEC; it replaces the default "utility,compute", so
        # all three are named. (The device plugin sets
        # NVIDIA_VISIBLE_DEVICES to the GPU it reserved.)
        NVIDIA_DRIVER_CAPABILITIES = "compute,video,utility"
      }

      template {
        destination = "secrets/ittybit.env"
        env         = true
        change_mode = "noop"
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/ittybit-agent" -}}
          ITTYBIT_NODE_TOKEN={{ .node_token }}
          AWS_ACCESS_KEY_ID={{ .aws_access_key_id }}
          AWS_SECRET_ACCESS_KEY={{ .aws_secret_access_key }}
          {{- end }}
        EOT
      }

      kill_signal  = "SIGTERM"
      kill_timeout = "30s"

      resources {
        cpu    = 2000
        memory = 2048

        # One GPU per agent; on clients with more, raise count to give the
        # agent every GPU (it encodes on every GPU it sees). At least 2 GiB
        # of GPU memory for a few 4K sessions.
        device "nvidia/gpu" {
          count = 1

          constraint {
            attribute = "${device.attr.memory}"
            operator  = ">="
            value     = "2 GiB"
          }
        }
      }
    }
  }

  group "intel" {
    constraint {
      attribute = "${meta.ittybit_agent}"
      value     = "intel"
    }

    network {
      port "metrics" {
        static = 9101
      }
    }

    service {
      name     = "ittybit-agent"
      provider = "consul"
      port     = "metrics"
      tags     = ["metrics", "intel"]
    }

    ephemeral_disk {
      size = 51200
    }

    task "agent" {
      driver = "docker"

      config {
        image        = "ghcr.io/ittybit-oss/ittybit:latest"
        network_mode = "host"
        # ittybit needs no capability and no set-uid program.
        cap_drop     = ["all"]
        security_opt = ["no-new-privileges"]
        args = [
          "agent",
          "--name=${node.unique.name}",
          "--server=dns+srv://ittybit-server.service.consul",
          "--dns-server=127.0.0.1:8600",
          "--work-dir=${NOMAD_ALLOC_DIR}/work",
          "--metrics=${NOMAD_ADDR_metrics}",
          "--drain-timeout=25s",
          "--slots=2",
        ]
        healthchecks {
          disable = true
        }
        # QSV and VAAPI open the GPU's render node.
        devices = [
          {
            host_path      = "/dev/dri"
            container_path = "/dev/dri"
          },
        ]
        # The render node belongs to the host's render group (mode 0660):
        # its gid, as the host numbers it (110 is Debian 12's; see
        # `getent group render`), and video (44).
        group_add = ["44", "110"]
      }

      env {
        ITTYBIT_STORAGE        = "s3://ittybit/files"
        AWS_REGION             = "us-east-1"
        ITTYBIT_LOG_LEVEL      = "info"
        NVIDIA_VISIBLE_DEVICES = "void"
      }

      template {
        destination = "secrets/ittybit.env"
        env         = true
        change_mode = "noop"
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/ittybit-agent" -}}
          ITTYBIT_NODE_TOKEN={{ .node_token }}
          AWS_ACCESS_KEY_ID={{ .aws_access_key_id }}
          AWS_SECRET_ACCESS_KEY={{ .aws_secret_access_key }}
          {{- end }}
        EOT
      }

      kill_signal  = "SIGTERM"
      kill_timeout = "30s"

      resources {
        cpu    = 2000
        memory = 2048
      }
    }
  }

  group "cpu" {
    constraint {
      attribute = "${meta.ittybit_agent}"
      value     = "cpu"
    }

    network {
      port "metrics" {
        static = 9101
      }
    }

    service {
      name     = "ittybit-agent"
      provider = "consul"
      port     = "metrics"
      tags     = ["metrics", "cpu"]
    }

    ephemeral_disk {
      size = 51200
    }

    task "agent" {
      driver = "docker"

      config {
        image        = "ghcr.io/ittybit-oss/ittybit:latest"
        network_mode = "host"
        # ittybit needs no capability and no set-uid program.
        cap_drop     = ["all"]
        security_opt = ["no-new-privileges"]
        args = [
          "agent",
          "--name=${node.unique.name}",
          "--server=dns+srv://ittybit-server.service.consul",
          "--dns-server=127.0.0.1:8600",
          "--work-dir=${NOMAD_ALLOC_DIR}/work",
          "--metrics=${NOMAD_ADDR_metrics}",
          "--drain-timeout=25s",
          # Software encodes share the host's cores: e.g. --slots=4 with
          # --encode-threads=4 on 16 cores (and cpu below to match).
          "--slots=2",
        ]
        healthchecks {
          disable = true
        }
      }

      env {
        ITTYBIT_STORAGE        = "s3://ittybit/files"
        AWS_REGION             = "us-east-1"
        ITTYBIT_LOG_LEVEL      = "info"
        NVIDIA_VISIBLE_DEVICES = "void"
      }

      template {
        destination = "secrets/ittybit.env"
        env         = true
        change_mode = "noop"
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/ittybit-agent" -}}
          ITTYBIT_NODE_TOKEN={{ .node_token }}
          AWS_ACCESS_KEY_ID={{ .aws_access_key_id }}
          AWS_SECRET_ACCESS_KEY={{ .aws_secret_access_key }}
          {{- end }}
        EOT
      }

      kill_signal  = "SIGTERM"
      kill_timeout = "30s"

      resources {
        cpu    = 4000
        memory = 4096
      }
    }
  }
}
