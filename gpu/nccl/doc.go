// Package nccl binds the few NCCL calls a data-parallel run needs (unique id, communicator init, a float32
// sum all-reduce, abort and destroy), loading libnccl.so.2 with dlopen at run time: the CUDA build still
// links only libcuda, one binary runs on machines with and without NCCL, and a missing library is an
// error that says what to install, not a loader failure at start. The declarations are our own (the
// values are those of nccl.h); no NCCL header is needed to build.
//
// NCCL blocks forever when a peer dies; every wait here (communicator init, an all-reduce, destroy) polls
// instead and aborts the communicator after a timeout (Timeout, T2M_NCCL_TIMEOUT), so a lost rank ends
// the run with an error.
//
// The CUDA code is behind the t2mcuda build tag; the library search (Candidates) is in every build.
// nccl depends on gpu/cuda (for its cuInit guard) and on no t2m package above it.
package nccl
