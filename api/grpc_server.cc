#include "api/grpc_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "api/status_macros.h"

namespace flowscope {

absl::Status PrepareUnixSocket(const std::string& path) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("unix socket path is too long: ", path));
  }
  std::error_code ec;
  const auto dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create ", dir.string(), ": ", ec.message()));
  }
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) return absl::OkStatus();  // nothing there
  if (!S_ISSOCK(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " exists and is not a socket; not replacing it"));
  }
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "socket");
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  const bool live = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  if (live) {
    return absl::AlreadyExistsError(
        absl::StrCat("another server is listening on ", path, "; not replacing it"));
  }
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return absl::ErrnoToStatus(errno, absl::StrCat("removing stale socket ", path));
  }
  return absl::OkStatus();
}

namespace {

// Adds fixed headers (the server's version) to the initial metadata of every call.
class HeaderInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit HeaderInterceptor(const std::vector<std::pair<std::string, std::string>>* headers)
      : headers_(headers) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      std::multimap<std::string, std::string>* md = methods->GetSendInitialMetadata();
      for (const auto& [k, v] : *headers_) md->emplace(k, v);
    }
    methods->Proceed();
  }

 private:
  const std::vector<std::pair<std::string, std::string>>* headers_;
};

class HeaderInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit HeaderInterceptorFactory(std::vector<std::pair<std::string, std::string>> headers)
      : headers_(std::move(headers)) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo*) override {
    return new HeaderInterceptor(&headers_);
  }

 private:
  const std::vector<std::pair<std::string, std::string>> headers_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::Start(
    const std::vector<grpc::Service*>& services, const ListenOptions& options) {
  if (options.unix_socket.empty() && options.tcp_address.empty()) {
    return absl::InvalidArgumentError("nothing to listen on: give a unix socket or a TCP address");
  }
  std::unique_ptr<GrpcServer> s(new GrpcServer());
  s->options_ = options;
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // Plaintext listeners are ours (listener.h); a TLS one is gRPC's, bound exclusively.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  if (!options.unix_socket.empty()) {
    FLOWSCOPE_ASSIGN_OR_RETURN(auto l, Listener::BindUnix(options.unix_socket));
    s->listeners_.push_back(std::move(l));
  }
  if (!options.tcp_address.empty() && options.tcp_credentials == nullptr) {
    FLOWSCOPE_ASSIGN_OR_RETURN(auto l, Listener::BindTcp(options.tcp_address));
    s->tcp_port_ = l->port();
    s->tcp_bound_ = l->bound();
    s->listeners_.push_back(std::move(l));
  } else if (!options.tcp_address.empty()) {
    // gRPC would only say that it failed: find the reason first.
    FLOWSCOPE_RETURN_IF_ERROR(CheckTcpAddressFree(options.tcp_address));
    builder.AddListeningPort(options.tcp_address, options.tcp_credentials, &s->tcp_port_);
  }
  for (grpc::Service* svc : services) builder.RegisterService(svc);
  if (!options.headers.empty()) {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
    creators.push_back(std::make_unique<HeaderInterceptorFactory>(options.headers));
    builder.experimental().SetInterceptorCreators(std::move(creators));
  }
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || (options.tcp_credentials != nullptr && s->tcp_port_ == 0)) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.tcp_address,
                                               " (gRPC refused the address or the credentials)"));
  }
  if (s->tcp_bound_.empty() && !options.tcp_address.empty()) {
    const std::string host = options.tcp_address.substr(0, options.tcp_address.rfind(':'));
    s->tcp_bound_ = absl::StrCat(host.empty() ? "[::]" : host, ":", s->tcp_port_);
  }
  for (auto& l : s->listeners_) l->Start(s->server_.get());
  grpc::HealthCheckServiceInterface* health = s->server_->GetHealthCheckService();
  health->SetServingStatus(true);
  health->SetServingStatus("hubble.server.Observer", true);
  return s;
}

std::string GrpcServer::bound() const {
  std::vector<std::string> parts;
  if (!options_.unix_socket.empty()) parts.push_back("unix://" + options_.unix_socket);
  if (!tcp_bound_.empty()) {
    parts.push_back(options_.tcp_credentials != nullptr ? "tls://" + tcp_bound_ : tcp_bound_);
  }
  return absl::StrJoin(parts, " and ");
}

ListenerStats GrpcServer::listener_stats() const {
  ListenerStats total;
  for (const auto& l : listeners_) {
    const ListenerStats st = l->stats();
    total.accepted += st.accepted;
    total.refused += st.refused;
  }
  return total;
}

GrpcServer::~GrpcServer() { Shutdown(absl::Seconds(1)); }

void GrpcServer::Shutdown(absl::Duration grace) {
  if (shut_down_ || server_ == nullptr) return;
  shut_down_ = true;
  for (auto& l : listeners_) l->Stop();  // no new connections (and the socket file is gone)
  server_->GetHealthCheckService()->Shutdown();
  server_->Shutdown(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(grace));
  server_->Wait();
}

void GrpcServer::SetServing(bool serving) {
  if (server_ == nullptr || shut_down_) return;
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  health->SetServingStatus(serving);
  health->SetServingStatus("hubble.server.Observer", serving);
}

std::string GrpcServer::target() const {
  if (!options_.unix_socket.empty()) return "unix://" + options_.unix_socket;
  std::string host = options_.tcp_address.substr(0, options_.tcp_address.rfind(':'));
  if (host.empty() || host == "0.0.0.0" || host == "[::]") host = "127.0.0.1";
  return absl::StrCat(host, ":", tcp_port_);
}

}  // namespace flowscope
