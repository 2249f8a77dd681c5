// FlowBuilder: materializes a FlowRecord as Hubble's flow.Flow (and the GetFlowsResponse that
// carries it) only when a query wants it: addresses, L4, endpoints with their names, labels,
// workloads and identities, verdict and drop reason, monitor event type, observation point,
// traffic direction, is_reply, interface, and the Summary text Hubble's CLI prints.
// Const after construction; callable from any thread.
//
//   FlowBuilder builder(table, "node-1", &interfaces);
//   observer::GetFlowsResponse resp;
//   builder.BuildResponse(record, ring_position, &resp);
#ifndef FLOWSCOPE_OBSERVER_FLOW_BUILDER_H_
#define FLOWSCOPE_OBSERVER_FLOW_BUILDER_H_

#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "flow/flow.pb.h"
#include "observer/dns_table.h"
#include "observer/endpoint_table.h"
#include "observer/flow_record.h"
#include "observer/name_cache.h"
#include "observer/observer.pb.h"
#include "ringbuf/flow_ring.h"

namespace flowscope::observer {

// ifindex -> interface name, kept by the attach manager; thread-safe. The name of a removed
// interface stays while records that may carry its ifindex are in the ring (Retire), and goes
// once the ring has moved past them (Expire, from the daemon's maintenance thread), so pod
// churn does not grow it.
class InterfaceNames {
 public:
  // The ring whose records name interfaces; without one, Retire() forgets at once.
  void Track(const ringbuf::FlowRing<FlowRecord>* ring);
  void Set(uint32_t ifindex, std::string name);
  // The interface is gone: its name stays for the records written so far.
  void Retire(uint32_t ifindex);
  void Remove(uint32_t ifindex);
  // Forgets retired names no record in the ring can refer to; returns the names kept.
  size_t Expire();
  std::string Get(uint32_t ifindex) const;  // "" if unknown
  size_t size() const;

 private:
  struct Name {
    std::string name;
    uint64_t retired_at = 0;  // ring end position when retired; 0: live
  };
  mutable absl::Mutex mu_;
  const ringbuf::FlowRing<FlowRecord>* ring_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::flat_hash_map<uint32_t, Name> names_ ABSL_GUARDED_BY(mu_);
};

// "TCP Flags: SYN, ACK", "UDP", "ICMPv4 EchoRequest", ... as Hubble's parser writes Summary.
std::string FlowSummary(const FlowRecord& r);

// gopacket's name of an ICMP type and code ("EchoRequest", "DestinationUnreachable(Port)"), as
// Hubble's Summary and metrics use it.
std::string IcmpTypeName(bool v6, uint8_t type, uint8_t code);

// Hubble's monitor numbering for the event type of a record: {1, drop reason} for drops,
// {4, observation point} for traces, {129, 0} for L7 (DNS) flows.
int32_t MonitorType(const FlowRecord& r);
int32_t MonitorSubType(const FlowRecord& r);

// The direction of the connection as the endpoint (or, at the uplink, the node) sees it.
flow::TrafficDirection TrafficDirectionOf(const FlowRecord& r);

// What records of earlier runs (read back from the history) refer to: each run's uuid seed and
// its interfaces' names.
class RunArchive {
 public:
  virtual ~RunArchive() = default;
  virtual uint64_t RunId(uint32_t run) const = 0;
  virtual std::string InterfaceName(uint32_t run, uint32_t ifindex) const = 0;
};

// A length-delimited field appended to `out` in place: Open before its bytes are appended,
// Close after (the length goes in front, minimal as protobuf writes it; room is kept for two
// bytes of it).
size_t OpenLengthDelimited(uint32_t field, std::string* out);
void CloseLengthDelimited(size_t start, std::string* out);

class FlowBuilder {
 public:
  // `run_id` makes flow uuids unique across observer restarts.
  FlowBuilder(const EndpointTable& table, std::string node_name, const InterfaceNames* interfaces,
              uint64_t run_id);

  // Records of runs other than `current_run` are built with what `runs` kept of theirs. Call
  // before the builder is shared.
  void AttachRuns(const RunArchive* runs, uint32_t current_run);
  // The DNS messages DNS records refer to (Hubble's L7 DNS flows). Without it, a DNS record is
  // built as an L7 flow without its message. Call before the builder is shared.
  void AttachDns(const DnsTable* dns) { dns_ = dns; }
  const DnsTable* dns() const { return dns_; }
  // The names clients looked up (source_names, destination_names). Call before the builder is
  // shared.
  void AttachNames(const NameCache* names) { names_ = names; }
  const NameCache* names() const { return names_; }

  // `position` is the record's ring position in its run (they make the uuid); run 0 is this
  // one. `extensions`: the client asked for flowscope's types in Flow.extensions
  // (flowscope.v1.GetFlowsOptions); a Hubble client never gets them.
  void Build(const FlowRecord& r, uint64_t position, flow::Flow* out, uint32_t run = 0,
             bool extensions = false) const;
  void BuildResponse(const FlowRecord& r, uint64_t position, ::observer::GetFlowsResponse* out,
                     uint32_t run = 0, bool extensions = false) const;
  // One stream's encoded endpoints, reused from flow to flow (an entry's content never changes
  // under its id; the cache is emptied when the table changes all the same). One thread at a
  // time; Refresh() before each batch.
  class EndpointCache {
   public:
    void Refresh(const EndpointTable& table);

   private:
    friend class FlowBuilder;
    static constexpr size_t kMaxEntries = 4096;
    absl::string_view Body(const FlowBuilder& builder, uint32_t id);
    uint64_t version_ = ~uint64_t{0};
    absl::flat_hash_map<uint32_t, std::string> bodies_;
  };

  // Appends the encoded GetFlowsResponse that BuildResponse() fills, byte for byte what its
  // serializer writes, without building the message (the streams' path for a full flow); the
  // endpoints from `cache` when given.
  void EncodeResponse(const FlowRecord& r, uint64_t position, std::string* out, uint32_t run = 0,
                      EndpointCache* cache = nullptr, bool extensions = false) const;

  const std::string& node_name() const { return node_name_; }
  std::string InterfaceName(uint32_t ifindex) const;
  std::string InterfaceName(uint32_t ifindex, uint32_t run) const;
  std::string Uuid(uint64_t position) const;
  std::string Uuid(uint64_t position, uint32_t run) const;
  static std::string UuidOf(uint64_t run_id, uint64_t position);
  static void UuidInto(uint64_t run_id, uint64_t position, char out[36]);

 private:
  void FillEndpoint(uint32_t id, flow::Endpoint* out) const;
  void FillService(uint32_t id, flow::Flow* out, bool source) const;
  void EncodeEndpoint(uint32_t field, uint32_t id, std::string* out, EndpointCache* cache) const;
  void EncodeEndpointBody(uint32_t id, std::string* out) const;
  void EncodeService(uint32_t field, uint32_t id, std::string* out) const;

  const EndpointTable& table_;
  const std::string node_name_;
  const InterfaceNames* interfaces_;
  const uint64_t run_id_;
  const RunArchive* runs_ = nullptr;
  uint32_t current_run_ = 0;
  const DnsTable* dns_ = nullptr;
  const NameCache* names_ = nullptr;
};

}  // namespace flowscope::observer

#endif  // FLOWSCOPE_OBSERVER_FLOW_BUILDER_H_
