// Package rendezvous lets the processes of a data-parallel run find each other before NCCL can: rank 0
// hands a small payload (NCCL's unique id) to every other rank over one TCP port, the MASTER_ADDR:MASTER_PORT
// of the torchrun convention (SLURM's variables as a fallback). It is pure Go and depends on no other t2m
// package.
//
// The protocol, all integers big-endian:
//
//	rank r → rank 0: "T2MR" version(1 byte) world(u32) rank(u32)
//	rank 0 → rank r: "T2MR" version status(1 byte: 0 ok, 1 refused) world(u32) length(u32) bytes
//	                 (status 0: bytes is the payload; status 1: bytes is why rank r was refused)
//	rank r → rank 0: one byte 1, once the payload is read
//
// A connecting rank whose world size differs from rank 0's, whose rank is out of range, or whose rank
// already joined is refused and rank 0 fails with an error naming it: such a run would hang in NCCL.
package rendezvous
