// Kernel drop reasons (the kernel's enum skb_drop_reason, reported by skb:kfree_skb) under
// flowscope's own stable numbering: the kernel renumbers its reasons from release to release,
// while flowscope's ids are kept in records, in the on-disk history and on the wire, so they
// must mean the same across kernels, reboots and nodes. The ids follow the kernel's order as of
// Linux 6.18 and only ever grow at the end; a reason a newer kernel adds is kKernelReasonUnknown
// until it is added here.
//
//   uint8_t id = *KernelDropReasonId("NETFILTER_DROP");
//   KernelDropReasonName(id);   // "NETFILTER_DROP"
//   HubbleDropReasonOf(id);     // 0: Hubble's DropReason has none that means the same
#ifndef FLOWSCOPE_BPF_DROP_REASONS_H_
#define FLOWSCOPE_BPF_DROP_REASONS_H_

#include <cstdint>
#include <optional>

#include "absl/strings/string_view.h"

namespace flowscope::bpf {

inline constexpr uint8_t kKernelReasonUnknown = 255;

// In a FlowFilter's drop_reason_desc, values from here on are the kernel's reasons (this base +
// flowscope's id), beyond Hubble's DropReason codes: `--drop-reason-desc NETFILTER_DROP`. A
// Hubble server has no flow with such a reason, so it matches nothing there.
inline constexpr int kKernelDropReasonFilterBase = 1000;

// The name without the kernel's SKB_DROP_REASON_ (or SKB_) prefix, e.g. "NO_SOCKET";
// "UNKNOWN" for kKernelReasonUnknown and ids not in the table.
absl::string_view KernelDropReasonName(uint8_t id);

// The id of a name, with or without the SKB_DROP_REASON_ prefix, in any case; nullopt if the
// name is not one flowscope knows.
std::optional<uint8_t> KernelDropReasonId(absl::string_view name);

// The id of a name as the kernel's BTF spells the enumerator ("SKB_DROP_REASON_NO_SOCKET",
// "SKB_CONSUMED"); kKernelReasonUnknown for a name flowscope does not know.
uint8_t KernelDropReasonIdOfEnumerator(absl::string_view enumerator);

// Hubble's flow.DropReason code that means the same as a kernel reason, or 0 (none does).
uint32_t HubbleDropReasonOf(uint8_t id);

}  // namespace flowscope::bpf

#endif  // FLOWSCOPE_BPF_DROP_REASONS_H_
