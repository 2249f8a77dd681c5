#include "relay/peer_pool.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <algorithm>
#include <fstream>
#include <optional>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "api/file_util.h"
#include "api/logging.h"
#include "observer/observer.grpc.pb.h"

namespace flowscope::relay {
namespace {

// "name:port" → one "ip:port" per A/AAAA record; nullopt when the answer is unknown for now
// (resolver unreachable, out of memory), as opposed to a name that has no records.
std::optional<std::vector<std::string>> Resolve(const std::string& name_port) {
  const size_t colon = name_port.rfind(':');
  if (colon == std::string::npos) return std::vector<std::string>{};
  const std::string host = name_port.substr(0, colon);
  const std::string port = name_port.substr(colon + 1);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (const int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    if (rc == EAI_NONAME || rc == EAI_NODATA || rc == EAI_SERVICE)
      return std::vector<std::string>{};
    return std::nullopt;
  }
  std::vector<std::string> out;
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (a->ai_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr, buf, sizeof buf);
      out.push_back(absl::StrCat(buf, ":", port));
    } else if (a->ai_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr, buf, sizeof buf);
      out.push_back(absl::StrCat("[", buf, "]:", port));
    }
  }
  freeaddrinfo(res);
  return out;
}

}  // namespace

std::vector<std::string> ParsePeerList(absl::string_view text) {
  std::vector<std::string> out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    out.emplace_back(line);
  }
  return out;
}

PeerPool::PeerPool(PoolOptions options) : options_(std::move(options)) {}

PeerPool::~PeerPool() { Stop(); }

std::vector<std::string> PeerPool::Discover() const {
  std::set<std::string> all(options_.static_peers.begin(), options_.static_peers.end());
  std::lock_guard<std::mutex> lock(discover_mu_);
  for (const std::string& d : options_.dns_peers) {
    if (std::optional<std::vector<std::string>> found = Resolve(d)) {
      last_good_[d] = std::move(*found);
      failing_.erase(d);
    } else if (failing_.insert(d).second) {
      FLOWSCOPE_LOG_WARN("cannot resolve {} now; keeping its last {} addresses", d,
                         last_good_[d].size());
    }
    all.insert(last_good_[d].begin(), last_good_[d].end());
  }
  if (!options_.peers_file.empty()) {
    if (auto text = ReadOperatorFile(options_.peers_file, "peers file"); text.ok()) {
      last_good_[options_.peers_file] = ParsePeerList(*text);
      failing_.erase(options_.peers_file);
    } else if (failing_.insert(options_.peers_file).second) {
      // Being replaced (a ConfigMap update swaps a symlink) or gone: keep what it said.
      FLOWSCOPE_LOG_WARN("{}; keeping its last {} peers", std::string(text.status().message()),
                         last_good_[options_.peers_file].size());
    }
    const std::vector<std::string>& from_file = last_good_[options_.peers_file];
    all.insert(from_file.begin(), from_file.end());
  }
  if (notify_ != nullptr) {
    for (const PeerEntry& e : notify_->Peers()) all.insert(e.address);
  }
  all.erase("");
  return {all.begin(), all.end()};
}

bool PeerPool::UsesTls(const std::string& address) const {
  return options_.tls.has_value() && !absl::StartsWith(address, "unix:");
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> PeerPool::Connect(const std::string& address) const {
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  grpc::ChannelArguments args;
  if (UsesTls(address)) {
    auto tls = ClientTlsCredentials(*options_.tls);
    if (!tls.ok()) {  // checked at start-up; a file may have gone since: never plaintext
      return absl::UnavailableError(
          absl::StrCat("TLS towards ", address, ": ", tls.status().message()));
    }
    creds = tls->credentials;
    args = tls->args;
  }
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
  return grpc::CreateCustomChannel(address, creds, args);
}

void PeerPool::Start() {
  if (!options_.peer_service.empty()) {
    if (auto channel = Connect(options_.peer_service); channel.ok()) {
      notify_ = std::make_unique<PeerNotifyClient>(*channel, options_.peer_service);
      notify_->Start();
      // Its first answer, if it comes quickly, so the first refresh already has the peers.
      notify_->WaitForAnswer(std::min(options_.dial_timeout, absl::Milliseconds(500)));
    } else {
      FLOWSCOPE_LOG_ERROR("peer service: {}", std::string(channel.status().message()));
    }
  }
  Refresh();
  thread_ = std::thread([this] { Run(); });
}

void PeerPool::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (notify_ != nullptr) notify_->Stop();
}

void PeerPool::Run() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait_for(lock, absl::ToChronoMilliseconds(options_.refresh),
                     [this] { return stop_ || refresh_now_; });
      if (stop_) return;
      refresh_now_ = false;
    }
    Refresh();
  }
}

void PeerPool::ReportOffline(const std::string& address) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    refresh_now_ = true;
  }
  wake_.notify_all();
}

void PeerPool::Refresh() {
  const std::vector<std::string> addresses = Discover();
  std::map<std::string, Peer> current;
  {
    std::lock_guard<std::mutex> lock(mu_);
    current = peers_;
  }
  std::map<std::string, Peer> next;
  for (const std::string& address : addresses) {
    Peer p;
    if (auto it = current.find(address); it != current.end()) {
      p = it->second;
    } else {
      p.address = address;
      p.name = address;
      auto channel = Connect(address);
      if (!channel.ok()) {
        FLOWSCOPE_LOG_ERROR("{}", std::string(channel.status().message()));
        continue;
      }
      p.channel = *std::move(channel);
      p.tls = UsesTls(address);
      if (p.tls) p.tls_server_name = options_.tls->server_name;
    }
    // READY, or able to become ready within a short wait (an idle channel reconnects at once;
    // one that never connected stays CONNECTING / TRANSIENT_FAILURE and is not available).
    p.available = p.channel->GetState(true) == GRPC_CHANNEL_READY ||
                  p.channel->WaitForConnected(std::chrono::system_clock::now() +
                                              absl::ToChronoMilliseconds(std::min(
                                                  options_.dial_timeout, absl::Milliseconds(200))));
    if (p.available && (p.name == p.address || p.version.empty())) {
      // The node's own name and version.
      auto stub = ::observer::Observer::NewStub(p.channel);
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() +
                       absl::ToChronoMilliseconds(options_.dial_timeout));
      ::observer::GetNodesResponse nodes;
      if (stub->GetNodes(&ctx, {}, &nodes).ok() && nodes.nodes_size() == 1) {
        p.name = nodes.nodes(0).name();
        p.version = nodes.nodes(0).version();
      }
    }
    next.emplace(address, std::move(p));
  }
  int available = 0;
  for (const auto& [a, p] : next) available += p.available ? 1 : 0;
  std::function<void(int)> notify;
  {
    std::lock_guard<std::mutex> lock(mu_);
    peers_ = std::move(next);  // peers gone from discovery drop their channel here
    if (available != last_available_) {
      last_available_ = available;
      notify = options_.on_change;
    }
  }
  if (notify) notify(available);
}

std::vector<Peer> PeerPool::Snapshot() const {
  std::vector<Peer> out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [a, p] : peers_) out.push_back(p);
  }
  std::sort(out.begin(), out.end(), [](const Peer& a, const Peer& b) { return a.name < b.name; });
  return out;
}

}  // namespace flowscope::relay
