#include "observer/name_cache.h"

#include <arpa/inet.h>

#include <algorithm>
#include <mutex>

#include "absl/strings/ascii.h"
#include "bpf/flow_event.h"
#include "observer/endpoint_table.h"

namespace flowscope::observer {

NameCache::Client NameCache::ClientOf(const FlowRecord& r, bool source) {
  Client c;
  const uint32_t id = source ? r.src_endpoint : r.dst_endpoint;
  if (id > kWorldEndpointId) {
    c.endpoint = id;
    return c;
  }
  c.family = r.family;
  std::copy_n(source ? r.saddr : r.daddr, 4, c.addr.begin());
  return c;
}

NameCache::NameCache(Options options) : options_(options) {}

void NameCache::Add(const Client& client, const std::string& name,
                    const std::vector<std::string>& ips, uint32_t ttl_s, uint64_t time_ns) {
  std::string trimmed = absl::AsciiStrToLower(name);  // as Cilium's DNS cache keeps them
  if (!trimmed.empty() && trimmed.back() == '.') trimmed.pop_back();
  if (trimmed.empty() || ips.empty()) return;
  const uint64_t ttl_ns = std::max<uint64_t>(uint64_t{ttl_s} * 1'000'000'000,
                                             absl::ToInt64Nanoseconds(options_.min_ttl));
  const uint64_t until = time_ns + ttl_ns;
  std::unique_lock lock(mu_);
  for (const std::string& ip : ips) {
    Key k;
    k.client = client;
    if (inet_pton(AF_INET, ip.c_str(), k.addr.data()) == 1) {
      k.family = FS_FAMILY_IPV4;
    } else if (inet_pton(AF_INET6, ip.c_str(), k.addr.data()) == 1) {
      k.family = FS_FAMILY_IPV6;
    } else {
      continue;
    }
    auto [it, inserted] = entries_.try_emplace(k);
    if (inserted) {
      order_.push_back(k);
      while (entries_.size() > options_.max_entries && !order_.empty()) {
        entries_.erase(order_.front());
        order_.pop_front();
      }
      it = entries_.find(k);
      if (it == entries_.end()) continue;  // max_entries 0
    }
    std::vector<Name>& names = it->second;
    // The same name again while it holds extends it; after it lapsed, it holds anew.
    auto same = std::find_if(names.begin(), names.end(), [&](const Name& n) {
      return n.name == trimmed && time_ns <= n.until_ns;
    });
    if (same != names.end()) {
      same->until_ns = std::max(same->until_ns, until);
      continue;
    }
    names.push_back(Name{trimmed, time_ns, until});
    if (names.size() > options_.max_names_per_entry) {
      names.erase(std::min_element(names.begin(), names.end(), [](const Name& a, const Name& b) {
        return a.until_ns < b.until_ns;
      }));
    }
  }
  size_.store(entries_.size(), std::memory_order_relaxed);
}

std::vector<std::string> NameCache::Lookup(const Client& client, uint8_t family,
                                           const uint32_t addr[4], uint64_t time_ns) const {
  std::vector<std::string> out;
  if (empty()) return out;
  Key k;
  k.client = client;
  k.family = family;
  std::copy_n(addr, 4, k.addr.begin());
  {
    std::shared_lock lock(mu_);
    auto it = entries_.find(k);
    if (it == entries_.end()) return out;
    for (const Name& n : it->second) {
      if (n.from_ns <= time_ns && time_ns < n.until_ns) out.push_back(n.name);
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::vector<std::string> NameCache::DestinationNames(const FlowRecord& r) const {
  if (empty()) return {};
  return Lookup(ClientOf(r, /*source=*/true), r.family, r.daddr, r.time_ns);
}

std::vector<std::string> NameCache::SourceNames(const FlowRecord& r) const {
  if (empty()) return {};
  return Lookup(ClientOf(r, /*source=*/false), r.family, r.saddr, r.time_ns);
}

}  // namespace flowscope::observer
