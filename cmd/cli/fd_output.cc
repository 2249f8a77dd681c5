#include "cmd/cli/fd_output.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace flowscope::cli {

FdOutputBuffer::FdOutputBuffer(int fd, size_t capacity)
    : fd_(fd), buf_(new char[capacity > 0 ? capacity : 1]), capacity_(capacity > 0 ? capacity : 1) {
  setp(buf_.get(), buf_.get() + capacity_);
}

FdOutputBuffer::~FdOutputBuffer() { Drain(); }

bool FdOutputBuffer::WriteAll(const char* p, size_t n) {
  while (n > 0 && !failed_) {
    const ssize_t w = ::write(fd_, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      failed_ = true;
      break;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return !failed_;
}

bool FdOutputBuffer::Drain() {
  const bool ok = WriteAll(pbase(), static_cast<size_t>(pptr() - pbase()));
  setp(buf_.get(), buf_.get() + capacity_);  // what failed is dropped, not retried
  return ok;
}

FdOutputBuffer::int_type FdOutputBuffer::overflow(int_type c) {
  if (!Drain()) return traits_type::eof();
  if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::not_eof(c);
  *pptr() = traits_type::to_char_type(c);
  pbump(1);
  return c;
}

std::streamsize FdOutputBuffer::xsputn(const char* s, std::streamsize n) {
  if (failed_) return 0;
  const size_t size = static_cast<size_t>(n);
  const size_t room = static_cast<size_t>(epptr() - pptr());
  if (size <= room) {
    std::memcpy(pptr(), s, size);
    pbump(static_cast<int>(size));
    return n;
  }
  if (!Drain()) return 0;
  if (size >= capacity_) return WriteAll(s, size) ? n : 0;  // larger than the buffer: as is
  std::memcpy(pptr(), s, size);
  pbump(static_cast<int>(size));
  return n;
}

int FdOutputBuffer::sync() { return Drain() ? 0 : -1; }

}  // namespace flowscope::cli
