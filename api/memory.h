// Returns memory the process freed to the system. glibc keeps freed pages of its heaps and
// arenas for reuse: after a burst (a large endpoints file parsed, thousands of connections
// served and closed) the daemon's resident size stays at the peak unless told. Callable from
// any thread; takes a few milliseconds on a large heap, so not from the drain thread.
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

}  // namespace flowscope

#endif  // FLOWSCOPE_API_MEMORY_H_
