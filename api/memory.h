// The allocator's settings for a process that streams flows, and a way to return freed memory
// to the system.
//
// ReturnFreedMemory returns memory the process freed to the system. glibc keeps freed pages of its
// heaps and arenas for reuse: after a burst (a large endpoints file parsed, thousands of
// connections served and closed) the daemon's resident size stays at the peak unless told. Callable
// from any thread; takes a few milliseconds on a large heap, so not from the drain thread.
#ifndef FLOWSCOPE_API_MEMORY_H_
#define FLOWSCOPE_API_MEMORY_H_

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace flowscope {

inline void ReturnFreedMemory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

// Called first thing in main() of every flowscope program. A stream's batch (a thousand
// flows, about 256 KiB) is past glibc's mmap threshold: by default each would be a fresh
// mapping, page-faulted in 4 KiB at a time as it is written and unmapped when gRPC is done with
// it (a fifth of the CPU of a relay of relays went to those faults). Large blocks come from the
// heaps instead and are reused; freed memory is kept up to 64 MiB per heap before it is given
// back, and the daemons give the rest back periodically (ReturnFreedMemory).
inline void TuneAllocatorForStreams() {
#if defined(__GLIBC__)
  mallopt(M_MMAP_THRESHOLD, 16 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
#endif
}

}  // namespace flowscope

#endif  // FLOWSCOPE_API_MEMORY_H_
