// A std::streambuf that writes to a file descriptor through its own buffer, so `flowscope`'s
// std::cout writes a large dump in few syscalls (libstdc++'s std::cout, once unsynchronized from
// stdio, writes every 8 KiB and cannot be given a larger buffer). A failed write (EPIPE when the
// reader went away, ENOSPC) fails the stream, as std::cout's own buffer does.
#ifndef FLOWSCOPE_CMD_CLI_FD_OUTPUT_H_
#define FLOWSCOPE_CMD_CLI_FD_OUTPUT_H_

#include <cstddef>
#include <memory>
#include <streambuf>

namespace flowscope::cli {

class FdOutputBuffer : public std::streambuf {
 public:
  // Writes to `fd` (not owned) once `capacity` bytes are held, on flush, and when destroyed.
  FdOutputBuffer(int fd, size_t capacity);
  ~FdOutputBuffer() override;
  FdOutputBuffer(const FdOutputBuffer&) = delete;
  FdOutputBuffer& operator=(const FdOutputBuffer&) = delete;

 protected:
  int_type overflow(int_type c) override;
  std::streamsize xsputn(const char* s, std::streamsize n) override;
  int sync() override;

 private:
  // Writes everything held; false (and nothing more is written) once a write failed.
  bool Drain();
  bool WriteAll(const char* p, size_t n);

  int fd_;
  std::unique_ptr<char[]> buf_;
  size_t capacity_;
  bool failed_ = false;
};

}  // namespace flowscope::cli

#endif  // FLOWSCOPE_CMD_CLI_FD_OUTPUT_H_
