"""Controllers: the GitOps side. Every adapter to the outside world (git, forges, the daemon
loop, the GitHub Action entry point) lives here, on top of the public APIs of both cores."""
