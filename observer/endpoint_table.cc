#include "observer/endpoint_table.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <tuple>

#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "api/text.h"

namespace flowscope::observer {
namespace {

// The content that decides whether two entries are the same (all but the id).
auto Content(const Endpoint& e) {
  return std::tie(e.identity, e.namespace_name, e.pod_name, e.labels, e.workload_name,
                  e.workload_kind, e.node_name, e.cluster_name, e.reserved);
}

}  // namespace

const std::shared_ptr<const std::vector<std::string>>& LabelSet::Empty() {
  static const auto* empty = new std::shared_ptr<const std::vector<std::string>>(
      std::make_shared<const std::vector<std::string>>());
  return *empty;
}

LabelSet EndpointTable::InternLabels(std::vector<std::string> labels) {
  LabelSet set(std::move(labels));
  auto [it, inserted] = label_sets_.insert(set);
  return *it;
}

void EndpointTable::SweepLabels() {
  // Held only by the pool: no entry uses the list any more.
  absl::erase_if(label_sets_, [](const LabelSet& l) { return l.shared().use_count() == 1; });
}

size_t EndpointTable::ContentHash::operator()(const Endpoint* e) const {
  return absl::HashOf(Content(*e));
}

bool EndpointTable::ContentEq::operator()(const Endpoint* a, const Endpoint* b) const {
  return Content(*a) == Content(*b);
}

absl::StatusOr<AddrKey> ParseAddr(absl::string_view ip) {
  AddrKey key;
  const std::string s(ip);
  if (inet_pton(AF_INET, s.c_str(), key.words.data()) == 1) {
    key.family = 4;
  } else if (inet_pton(AF_INET6, s.c_str(), key.words.data()) == 1) {
    key.family = 6;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("invalid IP address \"", Quote(ip), "\""));
  }
  return key;
}

std::string AddrToString(const AddrKey& addr) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(addr.family == 4 ? AF_INET : AF_INET6, addr.words.data(), buf, sizeof buf);
  return buf;
}

std::vector<std::string> NormalizeLabels(absl::string_view namespace_name,
                                         const std::vector<std::string>& labels) {
  std::vector<std::string> out;
  out.reserve(labels.size() + 1);
  for (const std::string& l : labels) {
    // A source prefix is the part before the first ':' if that comes before any '='.
    const size_t colon = l.find(':');
    const size_t eq = l.find('=');
    const bool has_source = colon != std::string::npos && (eq == std::string::npos || colon < eq);
    out.push_back(has_source ? l : "k8s:" + l);
  }
  if (!namespace_name.empty()) {
    out.push_back(absl::StrCat("k8s:io.kubernetes.pod.namespace=", namespace_name));
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

uint32_t DeriveIdentity(absl::string_view namespace_name,
                        const std::vector<std::string>& normalized_labels) {
  // FNV-1a, 64 bit, over the namespace and the sorted labels.
  uint64_t h = 0xcbf29ce484222325ULL;
  auto mix = [&h](absl::string_view s) {
    for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
    h = (h ^ 0xff) * 0x100000001b3ULL;  // separator
  };
  mix(namespace_name);
  for (const std::string& l : normalized_labels) mix(l);
  return kMinPodIdentity + static_cast<uint32_t>(h % (kMaxPodIdentity - kMinPodIdentity + 1));
}

EndpointTable::EndpointTable(std::string cluster_name) : cluster_name_(std::move(cluster_name)) {
  absl::MutexLock lock(&mu_);
  Endpoint host;
  host.identity = kIdentityHost;
  host.labels = {"reserved:host"};
  host.reserved = true;
  Endpoint world;
  world.identity = kIdentityWorld;
  world.labels = {"reserved:world"};
  world.reserved = true;
  Intern(std::move(host));   // id 1
  Intern(std::move(world));  // id 2
  world_ = entries_.at(kWorldEndpointId).endpoint;
  Publish();
}

uint32_t EndpointTable::Intern(Endpoint entry) {
  if (auto it = by_content_.find(&entry); it != by_content_.end()) {
    const uint32_t id = (*it)->id;
    entries_.at(id).retired = false;  // back before it was released: same id
    return id;
  }
  const uint32_t id = next_id_++;
  entry.id = id;
  auto stored = std::make_shared<const Endpoint>(std::move(entry));
  by_content_.insert(stored.get());
  entries_.emplace(id, Entry{std::move(stored)});
  return id;
}

void EndpointTable::Publish() {
  auto merged = std::make_shared<AddrMap>(endpoints_by_addr_);
  // The node's own addresses win over anything a source says about them.
  for (const auto& [addr, id] : node_addrs_) (*merged)[addr] = id;
  published_ = std::move(merged);
  version_.fetch_add(1, std::memory_order_release);
}

std::vector<std::string> EndpointTable::Update(const std::vector<EndpointInfo>& endpoints) {
  std::vector<std::string> errors;
  absl::MutexLock lock(&mu_);
  AddrMap next;
  for (size_t i = 0; i < endpoints.size(); ++i) {
    const EndpointInfo& info = endpoints[i];
    const std::string where = absl::StrCat(
        "endpoint ", i + 1,
        info.pod_name.empty() ? ""
                              : absl::StrCat(" (", info.namespace_name, "/", info.pod_name, ")"));
    if (info.ips.empty()) {
      errors.push_back(absl::StrCat(where, ": no IP address"));
      continue;
    }
    std::vector<AddrKey> addrs;
    std::string bad;
    for (const std::string& ip : info.ips) {
      auto a = ParseAddr(ip);
      if (!a.ok()) {
        bad = std::string(a.status().message());
        break;
      }
      addrs.push_back(*a);
    }
    if (!bad.empty()) {
      errors.push_back(absl::StrCat(where, ": ", bad));
      continue;
    }
    Endpoint e;
    e.namespace_name = info.namespace_name;
    e.pod_name = info.pod_name;
    e.labels = InternLabels(NormalizeLabels(info.namespace_name, info.labels));
    e.workload_name = info.workload_name;
    e.workload_kind = info.workload_kind;
    e.node_name = info.node_name;
    e.cluster_name = info.cluster_name.empty() ? cluster_name_ : info.cluster_name;
    e.identity =
        info.identity.has_value() ? *info.identity : DeriveIdentity(e.namespace_name, e.labels);
    const uint32_t id = Intern(std::move(e));
    for (size_t k = 0; k < addrs.size(); ++k) {
      auto [it, inserted] = next.emplace(addrs[k], id);
      if (!inserted && it->second != id) {
        errors.push_back(absl::StrCat(where, ": address ", info.ips[k],
                                      " already belongs to another endpoint; skipped"));
      }
    }
  }
  endpoints_by_addr_ = std::move(next);
  SweepLabels();
  // Entries no address maps to any more are retired: kept until the ring has moved past them.
  absl::flat_hash_set<uint32_t> mapped;
  mapped.reserve(endpoints_by_addr_.size());
  for (const auto& [addr, id] : endpoints_by_addr_) mapped.insert(id);
  for (auto& [id, entry] : entries_) {
    if (entry.endpoint->reserved || mapped.contains(id)) {
      entry.retired = false;
      entry.seen_at_pass = entry.horizon = 0;
    } else if (!entry.retired) {
      entry.retired = true;
      entry.seen_at_pass = entry.horizon = 0;
    }
  }
  Publish();
  return errors;
}

std::vector<std::string> EndpointTable::SetNodeAddresses(const std::vector<std::string>& ips) {
  std::vector<std::string> errors;
  absl::MutexLock lock(&mu_);
  node_addrs_.clear();
  for (const std::string& ip : ips) {
    auto a = ParseAddr(ip);
    if (!a.ok()) {
      errors.push_back(std::string(a.status().message()));
      continue;
    }
    node_addrs_[*a] = kHostEndpointId;
  }
  Publish();
  return errors;
}

void EndpointTable::AttachArchive(const Archive* archive, uint32_t next_endpoint_id,
                                  uint32_t next_service_id) {
  absl::MutexLock lock(&mu_);
  archive_ = archive;
  next_id_ = std::max(next_id_, next_endpoint_id);
  next_service_id_ = std::max(next_service_id_, next_service_id);
}

std::shared_ptr<const Endpoint> EndpointTable::Get(uint32_t id) const {
  const Archive* archive = nullptr;
  std::shared_ptr<const Endpoint> world;
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = entries_.find(id);
    if (it != entries_.end()) return it->second.endpoint;
    archive = archive_;
    world = world_;
  }
  if (archive != nullptr) {
    if (auto e = archive->FindEndpoint(id)) return e;
  }
  return world;
}

size_t EndpointTable::Expire(uint64_t drain_passes, uint64_t written, uint64_t oldest) {
  absl::MutexLock lock(&mu_);
  std::vector<uint32_t> released;
  for (auto& [id, entry] : entries_) {
    if (!entry.retired) continue;
    if (entry.seen_at_pass == 0) {
      entry.seen_at_pass = drain_passes + 1;
    } else if (entry.horizon == 0) {
      // The Update came before Expire first saw the entry retired, when seen_at_pass - 1
      // passes had ended: a lookup with the old addresses happened in that pass or earlier,
      // and its record was written and published when the pass ended. So once it has,
      // every record that may refer to the entry sits below `written`.
      if (drain_passes >= entry.seen_at_pass) entry.horizon = written + 1;
    } else if (entry.horizon - 1 <= oldest) {
      released.push_back(id);
    }
  }
  for (uint32_t id : released) {
    auto it = entries_.find(id);
    by_content_.erase(it->second.endpoint.get());
    entries_.erase(it);
  }
  if (!released.empty()) SweepLabels();
  return released.size();
}

std::vector<std::pair<AddrKey, uint32_t>> EndpointTable::Addresses() const {
  absl::ReaderMutexLock lock(&mu_);
  return {published_->begin(), published_->end()};
}

size_t EndpointTable::size() const {
  absl::ReaderMutexLock lock(&mu_);
  return entries_.size();
}

size_t EndpointTable::retired() const {
  absl::ReaderMutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [id, entry] : entries_) n += entry.retired;
  return n;
}

std::vector<std::string> EndpointTable::UpdateServices(const std::vector<ServiceInfo>& services) {
  std::vector<std::string> errors;
  absl::MutexLock lock(&mu_);
  auto next = std::make_shared<FrontendMap>();
  for (const ServiceInfo& info : services) {
    const std::string key = absl::StrCat(info.namespace_name, "/", info.name);
    auto& svc = services_by_name_[key];
    if (svc == nullptr) {
      auto s = std::make_shared<Service>();
      s->id = next_service_id_++;
      s->namespace_name = info.namespace_name;
      s->name = info.name;
      svc = s;
      services_by_id_[s->id] = svc;
    }
    for (const std::string& ip : info.ips) {
      auto a = ParseAddr(ip);
      if (!a.ok()) {
        errors.push_back(absl::StrCat("service ", key, ": ", a.status().message()));
        continue;
      }
      for (uint16_t port : info.ports) next->emplace(FrontendKey{*a, port}, svc->id);
    }
  }
  published_services_ = std::move(next);
  version_.fetch_add(1, std::memory_order_release);
  return errors;
}

void EndpointTable::SetNodeLabels(std::vector<std::string> labels) {
  absl::MutexLock lock(&mu_);
  node_labels_ = std::move(labels);
}

std::vector<std::string> EndpointTable::NodeLabels() const {
  absl::ReaderMutexLock lock(&mu_);
  return node_labels_;
}

std::shared_ptr<const Service> EndpointTable::GetService(uint32_t id) const {
  if (id == 0) return nullptr;
  const Archive* archive = nullptr;
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = services_by_id_.find(id);
    if (it != services_by_id_.end()) return it->second;
    archive = archive_;
  }
  return archive != nullptr ? archive->FindService(id) : nullptr;
}

void EndpointTable::Resolver::Refresh() {
  const uint64_t v = table_->version();
  if (v != version_) {
    absl::ReaderMutexLock lock(&table_->mu_);
    map_ = table_->published_;
    services_ = table_->published_services_;
    version_ = table_->version();
  }
}

bool EndpointTable::Resolver::HasServices() {
  Refresh();
  return services_ != nullptr && !services_->empty();
}

uint32_t EndpointTable::Resolver::LookupService(uint8_t family, const uint32_t addr[4],
                                                uint16_t port) {
  Refresh();
  if (services_ == nullptr || services_->empty()) return 0;
  FrontendKey key;
  key.addr.family = family;
  std::memcpy(key.addr.words.data(), addr, 16);
  if (family == 4) key.addr.words[1] = key.addr.words[2] = key.addr.words[3] = 0;
  key.port = port;
  auto it = services_->find(key);
  return it == services_->end() ? 0 : it->second;
}

uint32_t EndpointTable::Resolver::Lookup(uint8_t family, const uint32_t addr[4]) {
  Refresh();
  AddrKey key;
  key.family = family;
  std::memcpy(key.words.data(), addr, 16);
  if (family == 4) key.words[1] = key.words[2] = key.words[3] = 0;
  auto it = map_->find(key);
  return it == map_->end() ? kWorldEndpointId : it->second;
}

uint8_t EndpointTable::InternPolicy(const PolicyName& p) {
  absl::MutexLock lock(&policy_mu_);
  const auto same = [&](const PolicyName& q) {
    return q.name == p.name && q.namespace_name == p.namespace_name && q.kind == p.kind &&
           q.match_type == p.match_type;
  };
  for (int id = 1; id < 256; ++id) {
    if (policies_[id] != nullptr && same(*policies_[id])) return static_cast<uint8_t>(id);
  }
  for (int id = 1; id < 256; ++id) {
    if (policies_[id] != nullptr) continue;
    auto stored = std::make_shared<PolicyName>(p);
    stored->id = static_cast<uint8_t>(id);
    policies_[id] = std::move(stored);
    return static_cast<uint8_t>(id);
  }
  return 0;
}

std::shared_ptr<const PolicyName> EndpointTable::GetPolicy(uint8_t id) const {
  absl::MutexLock lock(&policy_mu_);
  return policies_[id];
}

std::vector<PolicyName> EndpointTable::Policies() const {
  absl::MutexLock lock(&policy_mu_);
  std::vector<PolicyName> out;
  for (const auto& p : policies_) {
    if (p != nullptr) out.push_back(*p);
  }
  return out;
}

void EndpointTable::RestorePolicies(const std::vector<PolicyName>& policies) {
  absl::MutexLock lock(&policy_mu_);
  for (const PolicyName& p : policies) {
    if (p.id != 0) policies_[p.id] = std::make_shared<PolicyName>(p);
  }
}

}  // namespace flowscope::observer
