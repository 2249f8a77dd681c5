#include "observer/dns_message.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace flowscope::observer {
namespace {

constexpr size_t kHeaderBytes = 12;
constexpr int kMaxPointers = 16;
constexpr size_t kMaxName = 255;
constexpr uint16_t kMaxQuestions = 16;
constexpr uint16_t kMaxAnswers = 256;

constexpr uint16_t kTypeA = 1;
constexpr uint16_t kTypeCname = 5;
constexpr uint16_t kTypeAaaa = 28;

class Reader {
 public:
  explicit Reader(absl::Span<const uint8_t> msg) : msg_(msg) {}

  bool Has(size_t pos, size_t n) const { return pos <= msg_.size() && n <= msg_.size() - pos; }
  uint16_t U16(size_t pos) const { return static_cast<uint16_t>((msg_[pos] << 8) | msg_[pos + 1]); }
  uint32_t U32(size_t pos) const {
    return (uint32_t{msg_[pos]} << 24) | (uint32_t{msg_[pos + 1]} << 16) |
           (uint32_t{msg_[pos + 2]} << 8) | msg_[pos + 3];
  }

  // The name at *pos, in presentation form with its final dot; *pos moves past it (past the
  // first pointer when it is compressed).
  absl::Status Name(size_t* pos, std::string* out) const {
    out->clear();
    size_t p = *pos;
    size_t resume = 0;  // where the name ends in the message when it jumped
    int pointers = 0;
    size_t wire = 0;  // the name's length as on the wire
    for (;;) {
      if (!Has(p, 1)) return absl::OutOfRangeError("truncated name");
      const uint8_t len = msg_[p];
      if ((len & 0xC0) == 0xC0) {
        if (!Has(p, 2)) return absl::OutOfRangeError("truncated compression pointer");
        const size_t target = U16(p) & 0x3FFF;
        // Only backwards: a pointer to itself or ahead could loop.
        if (target >= p) return absl::InvalidArgumentError("compression pointer loop");
        if (++pointers > kMaxPointers) {
          return absl::InvalidArgumentError("too many compression pointers");
        }
        if (resume == 0) resume = p + 2;
        p = target;
        continue;
      }
      if ((len & 0xC0) != 0) return absl::InvalidArgumentError("unsupported label type");
      if (len == 0) {
        ++p;
        break;
      }
      if (!Has(p + 1, len)) return absl::OutOfRangeError("truncated label");
      wire += len + 1;
      if (wire > kMaxName) return absl::InvalidArgumentError("name too long");
      AppendLabel(msg_.subspan(p + 1, len), out);
      out->push_back('.');
      p += 1 + len;
    }
    if (out->empty()) out->push_back('.');
    *pos = resume != 0 ? resume : p;
    return absl::OkStatus();
  }

  absl::Span<const uint8_t> Bytes(size_t pos, size_t n) const { return msg_.subspan(pos, n); }
  size_t size() const { return msg_.size(); }

 private:
  absl::Span<const uint8_t> msg_;
};

}  // namespace

void AppendLabel(absl::Span<const uint8_t> label, std::string* out) {
  for (const uint8_t c : label) {
    if (c <= 0x20 || c >= 0x7f) {
      // Not printable ASCII: \DDD, as DNS presentation format writes it (and names stay valid
      // UTF-8 for the flows' string fields).
      out->push_back('\\');
      out->push_back(static_cast<char>('0' + c / 100));
      out->push_back(static_cast<char>('0' + c / 10 % 10));
      out->push_back(static_cast<char>('0' + c % 10));
    } else if (c == '.' || c == '\\' || c == '"' || c == '(' || c == ')' || c == ';' || c == '@') {
      out->push_back('\\');
      out->push_back(static_cast<char>(c));
    } else {
      out->push_back(static_cast<char>(c));
    }
  }
}

namespace {

std::string IpText(absl::Span<const uint8_t> raw) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(raw.size() == 4 ? AF_INET : AF_INET6, raw.data(), buf, sizeof buf);
  return buf;
}

}  // namespace

std::string DnsTypeName(uint16_t type) {
  switch (type) {
    case 1:
      return "A";
    case 2:
      return "NS";
    case 5:
      return "CNAME";
    case 6:
      return "SOA";
    case 12:
      return "PTR";
    case 15:
      return "MX";
    case 16:
      return "TXT";
    case 28:
      return "AAAA";
    case 33:
      return "SRV";
    case 41:
      return "OPT";
    case 64:
      return "SVCB";
    case 65:
      return "HTTPS";
    case 255:
      return "ANY";
    default:
      return absl::StrCat("TYPE", type);
  }
}

absl::StatusOr<DnsMessage> ParseDnsMessage(absl::Span<const uint8_t> msg, bool complete) {
  const Reader r(msg);
  if (!r.Has(0, kHeaderBytes)) return absl::InvalidArgumentError("shorter than a DNS header");
  DnsMessage m;
  m.id = r.U16(0);
  const uint16_t flags = r.U16(2);
  m.response = (flags & 0x8000) != 0;
  m.opcode = static_cast<uint8_t>((flags >> 11) & 0xF);
  m.rcode = static_cast<uint8_t>(flags & 0xF);
  const uint16_t questions = r.U16(4);
  const uint16_t answers = r.U16(6);
  if (questions == 0) return absl::InvalidArgumentError("no question");
  if (questions > kMaxQuestions) return absl::InvalidArgumentError("too many questions");
  if (answers > kMaxAnswers) return absl::InvalidArgumentError("too many answers");

  size_t pos = kHeaderBytes;
  std::string name;
  for (uint16_t i = 0; i < questions; ++i) {
    if (absl::Status s = r.Name(&pos, &name); !s.ok()) return s;
    if (!r.Has(pos, 4)) return absl::InvalidArgumentError("truncated question");
    if (i == 0) m.query = name;
    m.qtypes.push_back(r.U16(pos));
    pos += 4;
  }
  bool have_ttl = false;
  for (uint16_t i = 0; i < answers; ++i) {
    // Running off the end of a partial copy ends the answers; of a whole message, it is an
    // error. (Truncation is OutOfRange, anything malformed InvalidArgument.)
    absl::Status s = r.Name(&pos, &name);
    if (s.ok() && !r.Has(pos, 10)) s = absl::OutOfRangeError("truncated answer");
    const uint16_t rdlength = s.ok() ? r.U16(pos + 8) : 0;
    if (s.ok() && !r.Has(pos + 10, rdlength)) s = absl::OutOfRangeError("truncated answer data");
    if (!s.ok()) {
      if (complete || !absl::IsOutOfRange(s)) return s;
      m.answers_cut = true;
      break;
    }
    const uint16_t type = r.U16(pos);
    const uint32_t ttl = r.U32(pos + 4);
    pos += 10;
    m.rrtypes.push_back(type);
    m.ttl = have_ttl ? std::min(m.ttl, ttl) : ttl;
    have_ttl = true;
    if ((type == kTypeA && rdlength == 4) || (type == kTypeAaaa && rdlength == 16)) {
      m.ips.push_back(IpText(r.Bytes(pos, rdlength)));
    } else if (type == kTypeA || type == kTypeAaaa) {
      return absl::InvalidArgumentError("address answer of the wrong length");
    } else if (type == kTypeCname) {
      size_t at = pos;
      std::string target;
      if (absl::Status c = r.Name(&at, &target); !c.ok()) return c;
      if (at > pos + rdlength) return absl::InvalidArgumentError("CNAME longer than its data");
      m.cnames.push_back(std::move(target));
    }
    pos += rdlength;
  }
  return m;
}

}  // namespace flowscope::observer
