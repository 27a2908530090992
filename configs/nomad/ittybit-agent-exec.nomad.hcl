# ittybit encode agents on Nomad (1.7 or later) with the exec driver: the
# host's ittybit and ffmpeg, isolated by Nomad (chroot, cgroups), no
# container image. Read ittybit-agent.nomad.hcl first: discovery,
# credentials and the opt-in client meta are the same.
#
# Software encoding only. The exec driver gives a task the usual /dev
# nodes and none of the GPU's (/dev/nvidia*, /dev/dri), and Nomad's NVIDIA
# plugin relies on the NVIDIA container runtime to add them: for NVENC,
# QSV or VAAPI use the docker job, or the systemd unit
# (configs/systemd/ittybit-agent.service) outside Nomad.
#
# Each client needs /usr/local/bin/ittybit, ffmpeg and ffprobe
# (/usr/bin), a system user ittybit, and:
#
#   client { meta { ittybit_agent = "cpu" } }
#
#   nomad var put nomad/jobs/ittybit-agent node_token=… \
#     aws_access_key_id=… aws_secret_access_key=…
#   nomad job run configs/nomad/ittybit-agent-exec.nomad.hcl
job "ittybit-agent" {
  type        = "system"
  datacenters = ["*"]

  update {
    max_parallel = 1
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
      driver = "exec"
      user   = "ittybit"

      config {
        command = "/usr/local/bin/ittybit"
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
