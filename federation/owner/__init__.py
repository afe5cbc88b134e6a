"""What only a data owner runs: its datasets and mock, the approval policy, the job runner and
the owner's side of the `datasite` CLI. Nothing here imports federation.scientist."""
