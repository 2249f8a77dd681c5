#include "observer/kube_source.h"

#include <algorithm>
#include <cctype>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "api/logging.h"

namespace flowscope::observer {
namespace {

using nlohmann::json;

// Query-string encoding of a continue token (standard base64 carries '+', '/' and '=').
std::string QueryEscape(const std::string& s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

// The message of a Status body, or the body's start.
std::string StatusMessage(int code, const std::string& body) {
  const json s = json::parse(body, nullptr, false);
  if (s.is_object() && s.contains("message") && s["message"].is_string()) {
    return absl::StrCat(code, ": ", s["message"].get<std::string>());
  }
  return absl::StrCat(code, ": ", body.substr(0, 200));
}

}  // namespace

// --- reflectors ---------------------------------------------------------------------------------

class KubernetesEndpointSource::Reflector {
 public:
  Reflector(KubernetesEndpointSource& source, std::string resource, bool namespaced)
      : source_(source), resource_(std::move(resource)), namespaced_(namespaced) {}
  virtual ~Reflector() = default;

  void Start() {
    thread_ = std::thread([this] { Run(); });
  }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }
  bool listed() const { return listed_.load(std::memory_order_acquire); }
  const std::string& resource() const { return resource_; }

 protected:
  // Parses the list's items (outside the lock) and replaces what the store held.
  virtual void Replace(const json& items) = 0;
  // Requires source_.mu_.
  virtual absl::Status Upsert(const std::string& key, const json& object) = 0;
  virtual void Remove(const std::string& key) = 0;

  KubernetesEndpointSource& source_;

 private:
  enum class WatchEnd { kAgain, kRelist, kBackoff };

  void Run() {
    std::mt19937_64 rng(std::random_device{}());
    absl::Duration backoff = source_.options_.min_backoff;
    const auto pause = [&]() {
      // Exponential, with ±50% jitter so nodes do not retry in step.
      std::uniform_real_distribution<double> jitter(0.5, 1.5);
      const absl::Duration d = backoff * jitter(rng);
      backoff = std::min(backoff * 2, source_.options_.max_backoff);
      std::unique_lock<std::mutex> lock(source_.mu_);
      source_.wake_.wait_for(lock, absl::ToChronoMilliseconds(d), [&] { return source_.stop_; });
      return !source_.stop_;
    };
    while (!Stopping()) {
      std::string rv;
      if (absl::Status s = List(&rv); !s.ok()) {
        if (Stopping()) return;
        source_.CountError(resource_, std::string(s.message()));
        if (!pause()) return;
        continue;
      }
      backoff = source_.options_.min_backoff;
      for (;;) {
        const WatchEnd end = Watch(rv, rng);
        if (Stopping()) return;
        if (end == WatchEnd::kRelist) break;
        if (end == WatchEnd::kBackoff && !pause()) return;
        if (end == WatchEnd::kAgain) backoff = source_.options_.min_backoff;
      }
    }
  }

  bool Stopping() const {
    std::lock_guard<std::mutex> lock(source_.mu_);
    return source_.stop_;
  }

  std::string Path() const { return absl::StrCat("/api/v1/", resource_); }

  absl::Status List(std::string* rv) {
    json items = json::array();
    std::string cont;
    for (;;) {
      std::string target = absl::StrCat(Path(), "?limit=", source_.options_.page_size);
      if (!cont.empty()) absl::StrAppend(&target, "&continue=", QueryEscape(cont));
      {
        std::lock_guard<std::mutex> lock(source_.mu_);
        ++source_.stats_.pages;
      }
      auto r = source_.client_->Get(target, source_.options_.request_timeout);
      if (!r.ok()) return r.status();
      if (r->status == 410 && !cont.empty()) {
        // The continue token expired: start the list again.
        cont.clear();
        items = json::array();
        continue;
      }
      if (r->status != 200) {
        return absl::UnavailableError(
            absl::StrCat("listing ", resource_, ": ", StatusMessage(r->status, r->body)));
      }
      json page = json::parse(r->body, nullptr, false);
      r->body.clear();
      if (!page.is_object() || !page.contains("items") || !page["items"].is_array() ||
          !page.contains("metadata") || !page["metadata"].is_object()) {
        return absl::DataLossError(absl::StrCat("listing ", resource_, ": not a list"));
      }
      const json& meta = page["metadata"];
      if (meta.contains("resourceVersion") && meta["resourceVersion"].is_string()) {
        *rv = meta["resourceVersion"].get<std::string>();
      }
      for (json& item : page["items"]) items.push_back(std::move(item));
      cont = meta.contains("continue") && meta["continue"].is_string()
                 ? meta["continue"].get<std::string>()
                 : "";
      if (cont.empty()) break;
    }
    Replace(items);
    {
      std::lock_guard<std::mutex> lock(source_.mu_);
      ++source_.stats_.lists;
    }
    listed_.store(true, std::memory_order_release);
    source_.MarkDirty();
    return absl::OkStatus();
  }

  WatchEnd Watch(std::string& rv, std::mt19937_64& rng) {
    const int64_t base = absl::ToInt64Seconds(source_.options_.watch_timeout);
    std::uniform_int_distribution<int64_t> spread(base, 2 * base);
    const int64_t timeout = std::max<int64_t>(1, spread(rng));
    const std::string target =
        absl::StrCat(Path(), "?watch=1&allowWatchBookmarks=true&resourceVersion=", rv,
                     "&timeoutSeconds=", timeout);
    {
      std::lock_guard<std::mutex> lock(source_.mu_);
      ++source_.stats_.watches;
    }
    WatchEnd end = WatchEnd::kAgain;
    std::string error;
    auto r = source_.client_->Watch(
        target, absl::Seconds(timeout) + absl::Minutes(1),
        [&](absl::string_view line) { return Apply(line, rv, &end, &error); });
    if (!r.ok()) {
      if (!Stopping()) source_.CountError(resource_, std::string(r.status().message()));
      return WatchEnd::kBackoff;
    }
    if (r->status == 410) {
      std::lock_guard<std::mutex> lock(source_.mu_);
      ++source_.stats_.relists;
      return WatchEnd::kRelist;
    }
    if (r->status != 200) {
      source_.CountError(
          resource_, absl::StrCat("watching ", resource_, ": ", StatusMessage(r->status, r->body)));
      return WatchEnd::kBackoff;
    }
    if (end == WatchEnd::kRelist) {
      std::lock_guard<std::mutex> lock(source_.mu_);
      ++source_.stats_.relists;
    }
    if (!error.empty()) source_.CountError(resource_, error);
    return end;
  }

  // One watch event. False ends the watch (with *end saying what next).
  bool Apply(absl::string_view line, std::string& rv, WatchEnd* end, std::string* error) {
    const json e = json::parse(line, nullptr, false);
    const auto malformed = [&](const std::string& why) {
      source_.CountMalformed(resource_, absl::StrCat("watch event skipped: ", why));
      return !Stopping();
    };
    if (!e.is_object() || !e.contains("type") || !e["type"].is_string() || !e.contains("object") ||
        !e["object"].is_object()) {
      return malformed(absl::StrCat("not a watch event: ", line.substr(0, 120)));
    }
    const std::string type = e["type"].get<std::string>();
    const json& object = e["object"];
    if (type == "ERROR") {
      const int code = object.contains("code") && object["code"].is_number_integer()
                           ? object["code"].get<int>()
                           : 0;
      if (code == 410) {
        *end = WatchEnd::kRelist;
      } else {
        *end = WatchEnd::kBackoff;
        *error = absl::StrCat("watching ", resource_, ": ", StatusMessage(code, object.dump()));
      }
      return false;
    }
    if (type == "BOOKMARK") {
      if (object.contains("metadata") && object["metadata"].is_object() &&
          object["metadata"].contains("resourceVersion") &&
          object["metadata"]["resourceVersion"].is_string()) {
        rv = object["metadata"]["resourceVersion"].get<std::string>();
      }
      std::lock_guard<std::mutex> lock(source_.mu_);
      ++source_.stats_.events;
      ++source_.stats_.bookmarks;
      return !source_.stop_;
    }
    if (type != "ADDED" && type != "MODIFIED" && type != "DELETED") {
      return malformed(absl::StrCat("unknown event type \"", type, "\""));
    }
    auto ref = ParseObjectRef(object, namespaced_);
    if (!ref.ok()) return malformed(std::string(ref.status().message()));
    if (!ref->resource_version.empty()) rv = ref->resource_version;
    absl::Status applied;
    {
      std::lock_guard<std::mutex> lock(source_.mu_);
      ++source_.stats_.events;
      if (type == "DELETED") {
        Remove(ref->key);
      } else {
        applied = Upsert(ref->key, object);
      }
    }
    if (!applied.ok()) return malformed(std::string(applied.message()));
    source_.MarkDirty();
    return !Stopping();
  }

  const std::string resource_;
  const bool namespaced_;
  std::atomic<bool> listed_{false};
  std::thread thread_;
};

namespace {

template <typename T>
class TypedReflector final : public KubernetesEndpointSource::Reflector {
 public:
  using Parse = absl::StatusOr<T> (*)(const json&);
  TypedReflector(KubernetesEndpointSource& source, std::string resource, bool namespaced,
                 std::map<std::string, T>& store, Parse parse,
                 std::function<void(const std::string&, const std::string&)> malformed,
                 std::mutex& mu, std::function<void(T&)> keep = nullptr)
      : Reflector(source, std::move(resource), namespaced),
        store_(store),
        parse_(parse),
        malformed_(std::move(malformed)),
        mu_(mu),
        namespaced_(namespaced),
        keep_(std::move(keep)) {}

 protected:
  void Replace(const json& items) override {
    std::map<std::string, T> fresh;
    for (const json& item : items) {
      auto ref = ParseObjectRef(item, namespaced_);
      auto parsed = ref.ok() ? parse_(item) : absl::StatusOr<T>(ref.status());
      if (!parsed.ok()) {
        malformed_(resource(), absl::StrCat("list item skipped: ", parsed.status().message()));
        continue;
      }
      fresh.insert_or_assign(ref->key, *std::move(parsed));
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (keep_) {
      for (auto& [key, item] : fresh) keep_(item);
    }
    store_.swap(fresh);
  }
  absl::Status Upsert(const std::string& key, const json& object) override {
    auto parsed = parse_(object);
    if (!parsed.ok()) return parsed.status();  // the last good version stays
    if (keep_) keep_(*parsed);
    store_.insert_or_assign(key, *std::move(parsed));
    return absl::OkStatus();
  }
  void Remove(const std::string& key) override { store_.erase(key); }

 private:
  std::map<std::string, T>& store_;
  const Parse parse_;
  const std::function<void(const std::string&, const std::string&)> malformed_;
  std::mutex& mu_;
  const bool namespaced_;
  const std::function<void(T&)> keep_;  // under mu_, before an item is stored
};

}  // namespace

// --- the source ---------------------------------------------------------------------------------

KubernetesEndpointSource::KubernetesEndpointSource(std::unique_ptr<KubeClient> client,
                                                   EndpointTable& table, KubeSourceOptions options)
    : client_(std::move(client)), table_(table), options_(std::move(options)) {}

KubernetesEndpointSource::~KubernetesEndpointSource() { Stop(); }

absl::Status KubernetesEndpointSource::Start() {
  auto malformed = [this](const std::string& r, const std::string& m) { CountMalformed(r, m); };
  reflectors_.push_back(std::make_unique<TypedReflector<KubeNamespace>>(
      *this, "namespaces", false, namespaces_, &ParseNamespace, malformed, mu_));
  reflectors_.push_back(std::make_unique<TypedReflector<KubeNode>>(*this, "nodes", false, nodes_,
                                                                   &ParseNode, malformed, mu_));
  reflectors_.push_back(std::make_unique<TypedReflector<KubeService>>(
      *this, "services", true, services_, &ParseService, malformed, mu_));
  // Pods of one workload carry the same labels: one shared copy of each distinct list.
  auto share_labels = [this](KubePod& pod) { pod.labels = *pod_labels_.insert(pod.labels).first; };
  reflectors_.push_back(std::make_unique<TypedReflector<KubePod>>(
      *this, "pods", true, pods_, &ParsePod, malformed, mu_, share_labels));
  publisher_ = std::thread([this] { PublishLoop(); });
  for (auto& r : reflectors_) r->Start();
  FLOWSCOPE_LOG_INFO("kubernetes: watching pods, services, nodes and namespaces at {} ({})",
                     client_->config().server, client_->config().source);
  return absl::OkStatus();
}

void KubernetesEndpointSource::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return;
    stop_ = true;
  }
  wake_.notify_all();
  client_->Shutdown();
  for (auto& r : reflectors_) r->Join();
  if (publisher_.joinable()) publisher_.join();
}

void KubernetesEndpointSource::MarkDirty() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    dirty_ = true;
  }
  wake_.notify_all();
}

void KubernetesEndpointSource::CountError(const std::string& resource, const std::string& message) {
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.errors;
  if (stats_.last_error != message) {
    FLOWSCOPE_LOG_WARN("kubernetes {}: {}; retrying", resource, message);
  }
  stats_.last_error = message;
}

void KubernetesEndpointSource::CountMalformed(const std::string& resource,
                                              const std::string& message) {
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.malformed;
  if (std::find(logged_malformed_.begin(), logged_malformed_.end(), resource) ==
      logged_malformed_.end()) {
    logged_malformed_.push_back(resource);
    FLOWSCOPE_LOG_WARN("kubernetes {}: {} (further malformed {} are only counted)", resource,
                       message, resource);
  }
}

void KubernetesEndpointSource::PublishLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  absl::Duration last = absl::ZeroDuration();
  for (;;) {
    wake_.wait(lock, [&] { return stop_ || dirty_; });
    if (stop_) return;
    // Let a burst of events gather into one update. A publish rebuilds the whole table (and
    // holds the reflectors off while it reads their objects), so on a large cluster the next one
    // waits at least 4× as long as the last took: publishing stays under a fifth of the time and
    // a burst of watch events is applied at full speed in between.
    const absl::Duration delay = std::max(options_.publish_delay, 4 * last);
    wake_.wait_for(lock, absl::ToChronoMilliseconds(delay), [&] { return stop_; });
    if (stop_) return;
    dirty_ = false;
    lock.unlock();
    const absl::Time start = absl::Now();
    Publish();
    last = absl::Now() - start;
    lock.lock();
  }
}

void KubernetesEndpointSource::Publish() {
  std::vector<EndpointInfo> infos;
  std::vector<ServiceInfo> services;
  std::vector<std::string> node_labels;
  bool all_listed = true;
  for (const auto& r : reflectors_) all_listed = all_listed && r->listed();
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Which pod holds each address: not being deleted first, then the newest.
    absl::flat_hash_map<absl::string_view, const KubePod*> owner;
    owner.reserve(pods_.size());
    const auto better = [](const KubePod* a, const KubePod* b) {
      if (a->deleting != b->deleting) return !a->deleting;
      if (a->created != b->created) return a->created > b->created;
      return std::tie(a->namespace_name, a->name) > std::tie(b->namespace_name, b->name);
    };
    for (const auto& [key, pod] : pods_) {
      if (pod.host_network || pod.terminated) continue;
      for (const std::string& ip : pod.ips) {
        auto [it, inserted] = owner.emplace(ip, &pod);
        if (!inserted && better(&pod, it->second)) it->second = &pod;
      }
    }
    absl::erase_if(pod_labels_, [](const LabelSet& l) { return l.shared().use_count() == 1; });
    infos.reserve(pods_.size() + nodes_.size());
    for (const auto& [key, pod] : pods_) {
      EndpointInfo info;
      for (const std::string& ip : pod.ips) {
        auto it = owner.find(ip);
        if (it != owner.end() && it->second == &pod) info.ips.push_back(ip);
      }
      if (info.ips.empty()) continue;
      info.namespace_name = pod.namespace_name;
      info.pod_name = pod.name;
      info.labels = pod.labels.get();
      if (auto ns = namespaces_.find(pod.namespace_name); ns != namespaces_.end()) {
        for (const std::string& l : ns->second.labels) {
          info.labels.push_back("io.cilium.k8s.namespace.labels." + l);
        }
      }
      if (!pod.service_account.empty()) {
        info.labels.push_back("io.cilium.k8s.policy.serviceaccount=" + pod.service_account);
      }
      info.labels.push_back("io.cilium.k8s.policy.cluster=" + options_.cluster_name);
      info.workload_name = pod.workload_name;
      info.workload_kind = pod.workload_kind;
      info.node_name = pod.node_name;
      infos.push_back(std::move(info));
    }
    for (const auto& [key, svc] : services_) {
      ServiceInfo info{
          .namespace_name = svc.namespace_name, .name = svc.name, .ips = svc.cluster_ips};
      for (const KubeServicePort& p : svc.ports) info.ports.push_back(p.port);
      if (!info.ips.empty() && !info.ports.empty()) services.push_back(std::move(info));
    }
    for (const auto& [name, node] : nodes_) {
      if (name == options_.node_name) {
        node_labels = node.labels;
        continue;
      }
      EndpointInfo info;
      for (const std::string& ip : node.ips) {
        if (!owner.contains(ip)) info.ips.push_back(ip);
      }
      if (info.ips.empty()) continue;
      info.labels = {"reserved:remote-node"};
      info.identity = kIdentityRemoteNode;
      info.node_name = name;
      infos.push_back(std::move(info));
    }
  }
  table_.SetNodeLabels(std::move(node_labels));
  std::vector<std::string> errors = table_.Update(infos);
  for (std::string& e : table_.UpdateServices(services)) errors.push_back(std::move(e));
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.publishes;
  if (all_listed && !all_listed_) {
    all_listed_ = true;
    FLOWSCOPE_LOG_INFO("kubernetes: synced ({} pods, {} services, {} nodes, {} namespaces)",
                       pods_.size(), services_.size(), nodes_.size(), namespaces_.size());
  }
  for (const std::string& e : errors) {
    ++stats_.malformed;
    if (std::find(logged_malformed_.begin(), logged_malformed_.end(), "addresses") ==
        logged_malformed_.end()) {
      logged_malformed_.push_back("addresses");
      FLOWSCOPE_LOG_WARN("kubernetes: {} (further address problems are only counted)", e);
    }
  }
}

std::string KubernetesEndpointSource::NotSynced() const {
  if (reflectors_.empty()) return "the Kubernetes source has not started";
  std::vector<std::string> missing;
  for (const auto& r : reflectors_) {
    if (!r->listed()) missing.push_back(r->resource());
  }
  if (!missing.empty()) {
    return absl::StrCat("the Kubernetes source has not listed ", absl::StrJoin(missing, ", "),
                        " yet");
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (!all_listed_) return "the Kubernetes source has not updated the endpoint table yet";
  return "";
}

KubernetesEndpointSource::Stats KubernetesEndpointSource::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

std::vector<KubeNode> KubernetesEndpointSource::Nodes() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<KubeNode> out;
  for (const auto& [name, node] : nodes_) out.push_back(node);
  return out;
}

std::vector<KubeService> KubernetesEndpointSource::Services() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<KubeService> out;
  for (const auto& [key, svc] : services_) out.push_back(svc);
  return out;
}

}  // namespace flowscope::observer
