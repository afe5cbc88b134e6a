"""What both sides use: settings, the SyftBox client and keys, health, atomic files, process
trees, job statuses, code hashes and the syft-library patches."""
