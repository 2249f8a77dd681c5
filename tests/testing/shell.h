// Shell commands and free ports for tests that drive the project's binaries and scripts.
//
//   int rc;
//   std::string out = testing::RunShell("flowscope status", &rc);  // stdout and stderr
//   const int port = testing::FreeTcpPort();
#ifndef FLOWSCOPE_TESTS_TESTING_SHELL_H_
#define FLOWSCOPE_TESTS_TESTING_SHELL_H_

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

namespace flowscope::testing {

// Runs `cmd` with /bin/sh; its stdout and stderr, and its exit status in *status (-1 if it
// did not exit normally).
inline std::string RunShell(const std::string& cmd, int* status = nullptr) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int st = pclose(p);
  if (status != nullptr) *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

// A TCP port on 127.0.0.1 that nothing listens on right now.
inline int FreeTcpPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace flowscope::testing

#endif  // FLOWSCOPE_TESTS_TESTING_SHELL_H_
