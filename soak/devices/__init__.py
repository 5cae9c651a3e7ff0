"""A VM's virtio devices as a profile declares them: disks, network, RNG (`settings`), and what
each VM of a group gets from them (`plan`: images, pairs, addresses, guest arguments)."""
