// EndpointTable: what the observer knows about the addresses it sees — namespace, pod, labels,
// workload, node and security identity. Entries are immutable and records refer to them by id,
// so a flow keeps the names it had when it was seen even after the pod is gone or relabelled;
// an entry no address maps to any more is released once no record in the ring can refer to it
// (Expire), so pod churn does not grow the table. Ids are never reused. Reserved entries stand for
// the node itself (identity host=1) and for any address outside the known set (world=2). Pods get
// an identity derived from their namespace and labels alone, so every node computes the same number
// without coordination.
//
// Thread-safety: Update()/SetNodeAddresses() from any thread (a source's); Get() from any
// thread; the drain thread resolves addresses through its own Resolver, which touches no lock
// unless the table changed since its last lookup.
//
//   EndpointTable table("default");
//   table.Update({EndpointInfo{.ips = {"10.0.1.5"}, .namespace_name = "default",
//                              .pod_name = "tiefighter", .labels = {"org=empire"}}});
//   EndpointTable::Resolver r(table);
//   uint32_t id = r.Lookup(FS_FAMILY_IPV4, addr);
//   std::shared_ptr<const Endpoint> ep = table.Get(id);
//   ...
//   table.Expire(drain_passes, ring.Written(), ring.OldestPosition());  // now and then
#ifndef FLOWSCOPE_OBSERVER_ENDPOINT_TABLE_H_
#define FLOWSCOPE_OBSERVER_ENDPOINT_TABLE_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace flowscope::observer {

// Hubble's reserved security identities.
enum ReservedIdentity : uint32_t {
  kIdentityUnknown = 0,
  kIdentityHost = 1,
  kIdentityWorld = 2,
  kIdentityUnmanaged = 3,
  kIdentityHealth = 4,
  kIdentityInit = 5,
  kIdentityRemoteNode = 6,
  kIdentityKubeApiserver = 7,
  kIdentityIngress = 8,
};
// Identities derived from labels fall in [kMinPodIdentity, kMaxPodIdentity].
inline constexpr uint32_t kMinPodIdentity = 256;
inline constexpr uint32_t kMaxPodIdentity = (1u << 24) - 1;

// Table ids of the two entries every table has.
inline constexpr uint32_t kHostEndpointId = 1;
inline constexpr uint32_t kWorldEndpointId = 2;

// What a source knows about one endpoint.
struct EndpointInfo {
  std::vector<std::string> ips = {};
  std::string namespace_name = {};
  std::string pod_name = {};
  std::vector<std::string> labels = {};  // "key=value" or "source:key=value"; "k8s:" if no source
  std::string workload_name = {};
  std::string workload_kind = {};
  std::string node_name = {};
  std::string cluster_name = {};          // empty: the table's cluster
  std::optional<uint32_t> identity = {};  // explicit identity; otherwise derived
};

// A Kubernetes service: its frontends (cluster IP and port) name flows to and from them.
struct ServiceInfo {
  std::string namespace_name = {};
  std::string name = {};
  std::vector<std::string> ips = {};
  std::vector<uint16_t> ports = {};
};

struct Service {
  uint32_t id = 0;
  std::string namespace_name;
  std::string name;
};

// An endpoint's labels: an immutable, shared list (the replicas of a workload carry the same
// labels, so the table keeps one copy of them). Reads like a const std::vector<std::string>.
// A named policy rule, as flows that it denied name it (flow.Policy and policy_match_type).
struct PolicyName {
  uint8_t id = 0;  // 1..255; 0 is "unnamed"
  std::string name;
  std::string namespace_name;
  std::string kind;
  int32_t match_type = 0;  // flow.Flow.policy_match_type of the flows it denies
};

class LabelSet {
 public:
  using value_type = std::string;
  using const_iterator = std::vector<std::string>::const_iterator;
  using iterator = const_iterator;
  using size_type = size_t;

  LabelSet() : v_(Empty()) {}
  LabelSet(std::vector<std::string> labels)  // NOLINT: implicit, as the vector it stands for
      : v_(std::make_shared<const std::vector<std::string>>(std::move(labels))) {}
  LabelSet(std::initializer_list<std::string> labels)
      : LabelSet(std::vector<std::string>(labels)) {}
  explicit LabelSet(std::shared_ptr<const std::vector<std::string>> shared)
      : v_(std::move(shared)) {}

  operator const std::vector<std::string>&() const { return *v_; }  // NOLINT
  const std::vector<std::string>& get() const { return *v_; }
  const std::shared_ptr<const std::vector<std::string>>& shared() const { return v_; }
  const_iterator begin() const { return v_->begin(); }
  const_iterator end() const { return v_->end(); }
  size_t size() const { return v_->size(); }
  bool empty() const { return v_->empty(); }
  const std::string& operator[](size_t i) const { return (*v_)[i]; }
  bool operator==(const LabelSet& o) const { return v_ == o.v_ || *v_ == *o.v_; }
  template <typename H>
  friend H AbslHashValue(H h, const LabelSet& l) {
    return H::combine(std::move(h), *l.v_);
  }

 private:
  static const std::shared_ptr<const std::vector<std::string>>& Empty();
  std::shared_ptr<const std::vector<std::string>> v_;
};

// An immutable table entry.
struct Endpoint {
  uint32_t id = 0;
  uint32_t identity = 0;
  std::string namespace_name;
  std::string pod_name;
  LabelSet labels;  // sorted, each with its source ("k8s:org=empire")
  std::string workload_name;
  std::string workload_kind;
  std::string node_name;
  std::string cluster_name;
  bool reserved = false;  // host or world
};

// 16 bytes of address (IPv4 in the first 4) plus the family: the table's key.
struct AddrKey {
  std::array<uint32_t, 4> words{};
  uint8_t family = 0;
  bool operator==(const AddrKey& o) const { return family == o.family && words == o.words; }
  template <typename H>
  friend H AbslHashValue(H h, const AddrKey& k) {
    return H::combine(std::move(h), k.words, k.family);
  }
};

// Parses an IPv4 or IPv6 literal, and prints one.
absl::StatusOr<AddrKey> ParseAddr(absl::string_view ip);
std::string AddrToString(const AddrKey& addr);

// Labels as the table stores them: "k8s:" added where no source is given, the namespace label
// Kubernetes pods carry added, sorted, duplicates removed.
std::vector<std::string> NormalizeLabels(absl::string_view namespace_name,
                                         const std::vector<std::string>& labels);

// The identity of a pod: a hash of its namespace and normalized labels, in
// [kMinPodIdentity, kMaxPodIdentity].
uint32_t DeriveIdentity(absl::string_view namespace_name,
                        const std::vector<std::string>& normalized_labels);

// A service frontend: address and port.
struct FrontendKey {
  AddrKey addr;
  uint16_t port = 0;
  bool operator==(const FrontendKey& o) const { return port == o.port && addr == o.addr; }
  template <typename H>
  friend H AbslHashValue(H h, const FrontendKey& k) {
    return H::combine(std::move(h), k.addr, k.port);
  }
};

class EndpointTable {
 public:
  explicit EndpointTable(std::string cluster_name = "default");
  EndpointTable(const EndpointTable&) = delete;
  EndpointTable& operator=(const EndpointTable&) = delete;

  // Entries and services kept elsewhere (the on-disk history, history.h) under ids this table
  // never gives out; Get/GetService fall back to it for ids the table does not hold.
  class Archive {
   public:
    virtual ~Archive() = default;
    virtual std::shared_ptr<const Endpoint> FindEndpoint(uint32_t id) const = 0;
    virtual std::shared_ptr<const Service> FindService(uint32_t id) const = 0;
  };
  // New entries get ids from `next_endpoint_id` on and services from `next_service_id` on
  // (both above every id the archive holds; the reserved host and world ids stay). Call before
  // the first Update; `archive` outlives the table.
  void AttachArchive(const Archive* archive, uint32_t next_endpoint_id, uint32_t next_service_id);

  // Replaces the known endpoints. Entries whose content did not change keep their ids. Returns
  // an error per entry that was skipped (bad address, address claimed twice); the rest apply.
  std::vector<std::string> Update(const std::vector<EndpointInfo>& endpoints);

  // The node's own addresses, reported as the host entry.
  std::vector<std::string> SetNodeAddresses(const std::vector<std::string>& ips);

  // This node's labels ("key=value"), for FlowFilter.node_labels.
  void SetNodeLabels(std::vector<std::string> labels);
  std::vector<std::string> NodeLabels() const;

  // Replaces the known services. A service keeps its id for as long as the table lives (ids are
  // per namespace/name, so their number is that of the distinct names ever seen). Returns an
  // error per frontend skipped (bad address).
  std::vector<std::string> UpdateServices(const std::vector<ServiceInfo>& services);
  // The service with this id; nullptr for 0 (none) or an unknown id.
  std::shared_ptr<const Service> GetService(uint32_t id) const;

  // Names of policy rules, for the drops they cause (FlowRecord.policy). The same content keeps
  // its id for as long as the table lives; ids are never reused, so records keep their names.
  // Returns 0 (unnamed) once 255 distinct names were handed out.
  uint8_t InternPolicy(const PolicyName& p);
  std::shared_ptr<const PolicyName> GetPolicy(uint8_t id) const;  // nullptr for 0 / unknown
  std::vector<PolicyName> Policies() const;
  // Names stored by an earlier run (the history): they keep their ids. Call before InternPolicy.
  void RestorePolicies(const std::vector<PolicyName>& policies);

  // The entry with this id (from the archive for an id the table does not hold), or the world
  // entry for an unknown id. The entry stays valid for as long as the caller holds it, released
  // or not.
  std::shared_ptr<const Endpoint> Get(uint32_t id) const;

  // Releases entries no address has mapped to since records at ring positions below `oldest`
  // were written; returns how many. `drain_passes` counts the drain's completed passes (each
  // ends with everything it resolved written to the ring and published): an entry retired by
  // an Update is only measured against the ring once a whole pass started after it ended, so
  // a record resolved with the old addresses is never missed. Call it from one thread.
  size_t Expire(uint64_t drain_passes, uint64_t written, uint64_t oldest);

  uint64_t version() const { return version_.load(std::memory_order_acquire); }

  // Every address currently known (endpoints and the node's own) with its entry id.
  std::vector<std::pair<AddrKey, uint32_t>> Addresses() const;
  size_t size() const;     // entries held, retired ones included
  size_t retired() const;  // entries no address maps to, kept for the ring's records
  const std::string& cluster_name() const { return cluster_name_; }

  // Address lookups for one thread (the drain thread).
  class Resolver {
   public:
    explicit Resolver(const EndpointTable& table) : table_(&table) {}
    // The entry id for an address: a known endpoint, the host, or the world.
    uint32_t Lookup(uint8_t family, const uint32_t addr[4]);
    // The service whose frontend is this address and port; 0 for none.
    uint32_t LookupService(uint8_t family, const uint32_t addr[4], uint16_t port);
    // Whether any service is known (the drain skips service lookups when none is).
    bool HasServices();

   private:
    void Refresh();
    const EndpointTable* table_;
    uint64_t version_ = ~uint64_t{0};
    std::shared_ptr<const absl::flat_hash_map<AddrKey, uint32_t>> map_;
    std::shared_ptr<const absl::flat_hash_map<FrontendKey, uint32_t>> services_;
  };

 private:
  using AddrMap = absl::flat_hash_map<AddrKey, uint32_t>;

  struct Entry {
    std::shared_ptr<const Endpoint> endpoint;
    bool retired = false;
    uint64_t seen_at_pass = 0;  // drain passes + 1 when Expire first saw it retired; 0: not yet
    uint64_t horizon = 0;       // ring position + 1 below which records may refer to it; 0: unset
  };

  // The id of an entry with this content, creating it if needed. Requires mu_.
  uint32_t Intern(Endpoint entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // One shared copy of each distinct label list; lists no entry holds any more are dropped.
  LabelSet InternLabels(std::vector<std::string> labels) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SweepLabels() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Publish() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string cluster_name_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<uint32_t, Entry> entries_ ABSL_GUARDED_BY(mu_);
  uint32_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  const Archive* archive_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::shared_ptr<const Endpoint> world_ ABSL_GUARDED_BY(mu_);
  // The entries by content (so an unchanged entry keeps its id), pointing into entries_.
  struct ContentHash {
    size_t operator()(const Endpoint* e) const;
  };
  struct ContentEq {
    bool operator()(const Endpoint* a, const Endpoint* b) const;
  };
  absl::flat_hash_set<const Endpoint*, ContentHash, ContentEq> by_content_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<LabelSet, absl::Hash<LabelSet>> label_sets_ ABSL_GUARDED_BY(mu_);
  AddrMap endpoints_by_addr_ ABSL_GUARDED_BY(mu_);
  AddrMap node_addrs_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const AddrMap> published_ ABSL_GUARDED_BY(mu_);
  using FrontendMap = absl::flat_hash_map<FrontendKey, uint32_t>;
  absl::flat_hash_map<std::string, std::shared_ptr<const Service>> services_by_name_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint32_t, std::shared_ptr<const Service>> services_by_id_
      ABSL_GUARDED_BY(mu_);
  uint32_t next_service_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::vector<std::string> node_labels_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const FrontendMap> published_services_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> version_{0};
  mutable absl::Mutex policy_mu_;
  std::array<std::shared_ptr<const PolicyName>, 256> policies_ ABSL_GUARDED_BY(policy_mu_);
};

}  // namespace flowscope::observer

#endif  // FLOWSCOPE_OBSERVER_ENDPOINT_TABLE_H_
