# Builtin runner "docker": runs `cmd` with /bin/sh -ec inside a throwaway
# container of `image`, with the build's $WORKDIR mounted at /workdir (which is
# also the working directory).
#
#   image  the image to run (required)
#   cmd    the shell script to run inside the container (required)
#   args   extra `docker run` flags (for example ["--network", "host"])
#
# Every other param and build variable is forwarded with `-e NAME=value`;
# $PIKOCI_OUTPUT is remapped to its path under /workdir. When the image has
# git, /workdir is marked as a safe directory first so that repositories pulled
# by the worker (owned by another uid) can be used.
runner_type "docker" {
  run {
    path = "docker"
    args = [
      "run", "--rm",
      "-v", "$WORKDIR:/workdir",
      "-w", "/workdir",
      "$env",
      "$args",
      "$image",
      "/bin/sh", "-ec",
      "command -v git >/dev/null && git config --global --add safe.directory '*'; $cmd",
    ]
  }
}
