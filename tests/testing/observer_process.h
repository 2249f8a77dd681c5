// A flowscope-observer process for end-to-end tests: started inside a network namespace with
// the given flags, serving on a unix socket in `dir`, ready when its health check answers.
#ifndef FLOWSCOPE_TESTS_TESTING_OBSERVER_PROCESS_H_
#define FLOWSCOPE_TESTS_TESTING_OBSERVER_PROCESS_H_

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tests/testing/netns.h"

namespace flowscope::testing {

class ObserverProcess {
 public:
  // Runs `binary` in `netns` with `args` plus --listen-socket and --state-dir in `dir` (and its
  // HTTP server on a free loopback port of the namespace, unless `args` set --http-address);
  // waits up to 20 s for it to serve.
  static absl::StatusOr<std::unique_ptr<ObserverProcess>> Start(const std::string& binary,
                                                                const std::string& netns,
                                                                const std::filesystem::path& dir,
                                                                std::vector<std::string> args);

  const std::string& socket() const { return socket_; }
  std::string target() const { return "unix://" + socket_; }
  std::string Log() const;
  // "127.0.0.1:port" of its HTTP server, as its log says ("" if it has none).
  std::string HttpAddress() const;
  NetnsProcess& process() { return *process_; }

 private:
  std::string socket_;
  std::filesystem::path log_;
  std::unique_ptr<NetnsProcess> process_;
};

}  // namespace flowscope::testing

#endif  // FLOWSCOPE_TESTS_TESTING_OBSERVER_PROCESS_H_
