#include "observer/label_selector.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "api/text.h"

namespace flowscope::observer {
namespace {

// --- labels ------------------------------------------------------------------------------------

// Kubernetes' limits: a key is [prefix/]name with a name of 1..63 and a prefix of at most 253
// characters; a value is at most 63.
bool ValidLabelPart(absl::string_view s, bool key) {
  if (key && s.empty()) return false;
  if (key) {
    const size_t slash = s.rfind('/');
    const absl::string_view name = slash == absl::string_view::npos ? s : s.substr(slash + 1);
    if (name.empty() || name.size() > 63) return false;
    if (slash != absl::string_view::npos && (slash == 0 || slash > 253)) return false;
  } else if (s.size() > 63) {
    return false;
  }
  return std::all_of(s.begin(), s.end(), [key](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
           (key && c == '/');
  });
}

// Splits "source:key=value" into parts ("" source when there is none).
void SplitLabel(absl::string_view label, absl::string_view* source, absl::string_view* key,
                absl::string_view* value) {
  const size_t eq = label.find('=');
  absl::string_view kv_key = eq == absl::string_view::npos ? label : label.substr(0, eq);
  *value = eq == absl::string_view::npos ? absl::string_view() : label.substr(eq + 1);
  const size_t colon = kv_key.find(':');
  if (colon == absl::string_view::npos) {
    *source = {};
    *key = kv_key;
  } else {
    *source = kv_key.substr(0, colon);
    *key = kv_key.substr(colon + 1);
  }
}

}  // namespace

absl::StatusOr<std::vector<LabelRequirement>> ParseLabelSelector(absl::string_view selector) {
  std::vector<LabelRequirement> reqs;
  // Split on commas that are not inside parentheses.
  std::vector<std::string> terms;
  int depth = 0;
  std::string cur;
  for (char c : selector) {
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (c == ',' && depth == 0) {
      terms.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  terms.push_back(cur);
  if (depth != 0) return absl::InvalidArgumentError("unbalanced parentheses");

  for (std::string& raw : terms) {
    absl::string_view t = absl::StripAsciiWhitespace(raw);
    if (t.empty()) return absl::InvalidArgumentError("empty requirement");
    LabelRequirement r;
    absl::string_view key;
    if (absl::ConsumePrefix(&t, "!")) {
      r.op = LabelRequirement::Op::kNotExists;
      key = absl::StripAsciiWhitespace(t);
      if (key.find_first_of("=!() \t") != absl::string_view::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat("\"!\" takes a label key alone, not \"", Quote(key), "\""));
      }
    } else if (size_t p = t.find("!="); p != absl::string_view::npos) {
      r.op = LabelRequirement::Op::kNotEquals;
      key = absl::StripAsciiWhitespace(t.substr(0, p));
      r.values.emplace_back(absl::StripAsciiWhitespace(t.substr(p + 2)));
    } else if (size_t q = t.find('='); q != absl::string_view::npos) {
      r.op = LabelRequirement::Op::kEquals;
      key = absl::StripAsciiWhitespace(t.substr(0, q));
      absl::string_view v = t.substr(q + 1);
      absl::ConsumePrefix(&v, "=");
      r.values.emplace_back(absl::StripAsciiWhitespace(v));
    } else if (size_t sp = t.find_first_of(" \t"); sp != absl::string_view::npos) {
      key = t.substr(0, sp);
      absl::string_view rest = absl::StripAsciiWhitespace(t.substr(sp));
      if (absl::ConsumePrefix(&rest, "notin")) {
        r.op = LabelRequirement::Op::kNotIn;
      } else if (absl::ConsumePrefix(&rest, "in")) {
        r.op = LabelRequirement::Op::kIn;
      } else {
        return absl::InvalidArgumentError(absl::StrCat("cannot parse \"", Quote(t), "\""));
      }
      rest = absl::StripAsciiWhitespace(rest);
      if (!absl::ConsumePrefix(&rest, "(") || !absl::ConsumeSuffix(&rest, ")")) {
        return absl::InvalidArgumentError(
            absl::StrCat("expected a parenthesised value list in \"", Quote(t), "\""));
      }
      if (absl::StripAsciiWhitespace(rest).empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("the value list of \"", Quote(t), "\" must not be empty"));
      }
      for (absl::string_view v : absl::StrSplit(rest, ',')) {
        v = absl::StripAsciiWhitespace(v);
        if (!ValidLabelPart(v, false)) {
          return absl::InvalidArgumentError(absl::StrCat("invalid value \"", Quote(v), "\""));
        }
        r.values.emplace_back(v);
      }
    } else {
      r.op = LabelRequirement::Op::kExists;
      key = t;
    }
    absl::string_view source;
    absl::string_view bare_key;
    absl::string_view unused;
    SplitLabel(key, &source, &bare_key, &unused);
    if (!ValidLabelPart(bare_key, true) || !ValidLabelPart(source, false)) {
      return absl::InvalidArgumentError(absl::StrCat("invalid label key \"", Quote(key), "\""));
    }
    for (const std::string& v : r.values) {
      if (!ValidLabelPart(v, false)) {
        return absl::InvalidArgumentError(absl::StrCat("invalid label value \"", Quote(v), "\""));
      }
    }
    r.source = source == "any" ? "" : std::string(source);
    r.key = std::string(bare_key);
    reqs.push_back(std::move(r));
  }
  return reqs;
}

bool SelectorMatches(const std::vector<LabelRequirement>& selector,
                     const std::vector<std::string>& labels) {
  for (const LabelRequirement& r : selector) {
    bool found = false;
    bool value_ok = false;
    for (const std::string& l : labels) {
      absl::string_view source, key, value;
      SplitLabel(l, &source, &key, &value);
      if (key != r.key || (!r.source.empty() && source != r.source)) continue;
      found = true;
      const bool in_values = std::find(r.values.begin(), r.values.end(), value) != r.values.end();
      if (in_values) value_ok = true;
    }
    switch (r.op) {
      case LabelRequirement::Op::kExists:
        if (!found) return false;
        break;
      case LabelRequirement::Op::kNotExists:
        if (found) return false;
        break;
      case LabelRequirement::Op::kEquals:
      case LabelRequirement::Op::kIn:
        if (!value_ok) return false;
        break;
      case LabelRequirement::Op::kNotEquals:
      case LabelRequirement::Op::kNotIn:
        if (value_ok) return false;  // a missing label satisfies != and notin
        break;
    }
  }
  return true;
}

}  // namespace flowscope::observer
