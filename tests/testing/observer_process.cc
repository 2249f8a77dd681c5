#include "tests/testing/observer_process.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/testing/wait.h"

namespace flowscope::testing {

absl::StatusOr<std::unique_ptr<ObserverProcess>> ObserverProcess::Start(
    const std::string& binary, const std::string& netns, const std::filesystem::path& dir,
    std::vector<std::string> args) {
  auto p = std::unique_ptr<ObserverProcess>(new ObserverProcess());
  p->socket_ = (dir / "observer.sock").string();
  p->log_ = dir / "observer.log";
  args.insert(args.begin(), binary);
  if (std::find(args.begin(), args.end(), "--http-address") == args.end()) {
    args.insert(args.end(), {"--http-address", "127.0.0.1:0"});
  }
  // The history lives in the test's directory unless the test names one (or turns it off).
  if (std::find(args.begin(), args.end(), "--data-dir") == args.end()) {
    args.insert(args.end(), {"--data-dir", dir.string()});
  }
  args.insert(args.end(), {"--listen-socket", p->socket_, "--state-dir", dir.string()});
  auto proc = NetnsProcess::Start(netns, args, p->log_.string());
  if (!proc.ok()) return proc.status();
  p->process_ = std::move(proc).value();
  // A fresh channel per try: one that failed to connect backs off for a second or more.
  bool exited = false;
  auto serving = [&] {
    if (!p->process_->Running()) return exited = true;
    if (!std::filesystem::exists(p->socket_)) return false;
    auto health = grpc::health::v1::Health::NewStub(
        grpc::CreateChannel(p->target(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(300));
    grpc::health::v1::HealthCheckRequest req;
    req.set_service("hubble.server.Observer");
    grpc::health::v1::HealthCheckResponse resp;
    return health->Check(&ctx, req, &resp).ok() &&
           resp.status() == grpc::health::v1::HealthCheckResponse::SERVING;
  };
  if (WaitUntil(serving, absl::Seconds(20)) && !exited) return p;
  if (exited) return absl::FailedPreconditionError(absl::StrCat("the observer exited: ", p->Log()));
  return absl::DeadlineExceededError(absl::StrCat("the observer did not become ready: ", p->Log()));
}

std::string ObserverProcess::HttpAddress() const {
  const std::string log = Log();
  const std::string marker = "/readyz on ";
  const size_t at = log.find(marker);
  if (at == std::string::npos) return "";
  const size_t start = at + marker.size();
  return log.substr(start, log.find_first_of(" \n", start) - start);
}

std::string ObserverProcess::Log() const {
  std::ifstream in(log_);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace flowscope::testing
