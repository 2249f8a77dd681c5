// PortForward: `flowscope -P` — runs `kubectl port-forward` to the relay's Service in the
// background for as long as the command runs, and gives the local address to dial. The child is
// stopped (SIGTERM, then SIGKILL) when the PortForward goes away. One thread.
//
//   auto pf = PortForward::Start({});                 // kubectl -n kube-system port-forward
//   if (!pf.ok()) ...                                  //   service/flowscope-relay 4245:80
//   server.server = (*pf)->target();                  // "127.0.0.1:4245"
#ifndef FLOWSCOPE_CMD_CLI_PORT_FORWARD_H_
#define FLOWSCOPE_CMD_CLI_PORT_FORWARD_H_

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace flowscope::cli {

struct PortForwardOptions {
  std::string kubectl = "kubectl";  // found on PATH
  std::string kubeconfig;           // --kubeconfig; "" for kubectl's default
  std::string kube_context;         // --context; "" for the current one
  std::string kube_namespace = "kube-system";
  std::string service = "flowscope-relay";
  int service_port = 80;
  int local_port = 4245;
  absl::Duration ready_timeout = absl::Seconds(10);
};

class PortForward {
 public:
  // Starts kubectl and waits until the local port accepts connections; an error with kubectl's
  // own words if it exits first, or if it cannot be run at all.
  static absl::StatusOr<std::unique_ptr<PortForward>> Start(const PortForwardOptions& options);
  ~PortForward();
  PortForward(const PortForward&) = delete;
  PortForward& operator=(const PortForward&) = delete;

  std::string target() const;
  pid_t pid() const { return pid_; }

 private:
  PortForward(pid_t pid, int local_port, std::string log)
      : pid_(pid), local_port_(local_port), log_(std::move(log)) {}
  pid_t pid_;
  int local_port_;
  std::string log_;  // kubectl's output
};

}  // namespace flowscope::cli

#endif  // FLOWSCOPE_CMD_CLI_PORT_FORWARD_H_
