#include "cmd/cli/fd_output.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <ostream>
#include <string>

namespace flowscope::cli {
namespace {

// Everything the pipe holds now (non-blocking).
std::string Drain(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

class FdOutputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(pipe2(fds_, O_NONBLOCK), 0);
    fcntl(fds_[1], F_SETFL, 0);  // the writer blocks, as stdout does
    fcntl(fds_[0], F_SETPIPE_SZ, 1 << 20);
  }
  void TearDown() override {
    if (fds_[0] >= 0) close(fds_[0]);
    close(fds_[1]);
  }
  int fds_[2] = {-1, -1};
};

TEST_F(FdOutputTest, HoldsLinesUntilFullOrFlushedAndKeepsTheirOrder) {
  FdOutputBuffer buf(fds_[1], 64);
  std::ostream out(&buf);
  out << "first line\n" << 42 << '\n';
  EXPECT_EQ(Drain(fds_[0]), "");  // held
  out.flush();
  EXPECT_EQ(Drain(fds_[0]), "first line\n42\n");
  // Past the buffer: what was held goes first, then the rest, byte for byte.
  std::string expected;
  for (int i = 0; i < 100; ++i) {
    const std::string line = "line " + std::to_string(i) + std::string(i % 90, 'x') + "\n";
    out << line;
    expected += line;
  }
  const std::string big(1000, 'b');  // larger than the buffer: written as it is
  out << big;
  out.put('!');
  expected += big + "!";
  out.flush();
  EXPECT_TRUE(out.good());
  EXPECT_EQ(Drain(fds_[0]), expected);
}

TEST_F(FdOutputTest, WritesWhatIsHeldWhenDestroyed) {
  {
    FdOutputBuffer buf(fds_[1], 1 << 16);
    std::ostream out(&buf);
    out << "unflushed";
  }
  EXPECT_EQ(Drain(fds_[0]), "unflushed");
}

TEST_F(FdOutputTest, AFailedWriteFailsTheStreamAndWritesNothingMore) {
  signal(SIGPIPE, SIG_IGN);  // as flowscope's main does: EPIPE instead of a signal
  FdOutputBuffer buf(fds_[1], 16);
  std::ostream out(&buf);
  out << "before\n";
  out.flush();
  EXPECT_EQ(Drain(fds_[0]), "before\n");
  close(fds_[0]);  // the reader went away (`| head`)
  fds_[0] = -1;
  out << "after the reader left\n";
  out.flush();
  EXPECT_FALSE(out.good());
  out.clear();
  out << "x";
  out.flush();
  EXPECT_FALSE(out.good());
}

}  // namespace
}  // namespace flowscope::cli
