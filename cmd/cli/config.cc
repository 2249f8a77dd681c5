#include "cmd/cli/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "api/file_util.h"
#include "api/text.h"

namespace flowscope::cli {
namespace {

// Keys no config file sets: the file names itself on the command line, and --not only means
// something between two filters of one command line.
bool IsReservedKey(const std::string& key) {
  return key == "config" || key == "help" || key == "version" || key == "not";
}

bool IsFlag(const CLI::Option& opt) { return opt.get_expected_max() == 0; }

bool IsList(const CLI::Option& opt) {
  return opt.get_multi_option_policy() == CLI::MultiOptionPolicy::TakeAll ||
         opt.get_items_expected_max() > 1;
}

bool IsNumber(const CLI::Option& opt) {
  const std::string t = opt.get_type_name();
  return t == "INT" || t == "UINT" || t == "FLOAT";
}

// Go's strconv.ParseBool.
std::optional<bool> ParseBool(const std::string& s) {
  if (s == "1" || s == "t" || s == "T" || s == "TRUE" || s == "true" || s == "True") return true;
  if (s == "0" || s == "f" || s == "F" || s == "FALSE" || s == "false" || s == "False") {
    return false;
  }
  return std::nullopt;
}

struct Flag {
  CLI::App* command;
  CLI::Option* option;
};

// Every long flag name of `app` and its subcommands (one name can belong to several commands).
void IndexFlags(CLI::App* app, std::map<std::string, std::vector<Flag>>* index) {
  for (CLI::Option* opt : app->get_options()) {
    if (opt->get_lnames().empty()) continue;
    (*index)[opt->get_lnames().front()].push_back(Flag{app, opt});
  }
  for (CLI::App* sub : app->get_subcommands({})) IndexFlags(sub, index);
}

// The commands this invocation runs: the root and each chosen subcommand.
std::vector<CLI::App*> RunningCommands(CLI::App& app) {
  std::vector<CLI::App*> running{&app};
  for (size_t i = 0; i < running.size(); ++i) {
    for (CLI::App* sub : running[i]->get_subcommands()) running.push_back(sub);
  }
  return running;
}

std::string EnvName(const std::string& flag) {
  std::string env = "FLOWSCOPE_" + absl::AsciiStrToUpper(flag);
  std::replace(env.begin(), env.end(), '-', '_');
  return env;
}

std::optional<std::string> Env(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

// Gives `opt` the values, as if typed on the command line (validators and conversions run).
absl::Status SetOption(CLI::Option* opt, const std::vector<std::string>& values) {
  try {
    opt->clear();
    opt->add_result(values);
    opt->run_callback();
  } catch (const CLI::Error& e) {
    return absl::InvalidArgumentError(e.what());
  }
  return absl::OkStatus();
}

std::string Emit(const std::vector<ConfigEntry>& entries) {
  if (entries.empty()) return "{}\n";
  std::string s;
  for (const ConfigEntry& e : entries) {
    absl::StrAppend(&s, e.key, ":");
    if (!e.list) {
      const std::string v = e.values.empty() ? "" : e.values.front();
      absl::StrAppend(&s, " ", e.plain && !v.empty() ? v : YamlScalar(v), "\n");
    } else if (e.values.empty()) {
      absl::StrAppend(&s, " []\n");
    } else {
      s += "\n";
      for (const std::string& v : e.values) absl::StrAppend(&s, "    - ", YamlScalar(v), "\n");
    }
  }
  return s;
}

// One key's value as YAML: typed after the flag (a bool flag is true/false, a number plain).
std::string ValueYaml(const CLI::Option& opt, const std::vector<std::string>& values,
                      bool top_level) {
  if (IsList(opt)) {
    if (values.empty()) return top_level ? "[]\n" : " []\n";
    std::string s = top_level ? "" : "\n";
    for (const std::string& v : values) {
      absl::StrAppend(&s, top_level ? "" : "    ", "- ", YamlScalar(v), "\n");
    }
    return s;
  }
  const std::string v = values.empty() ? "" : values.back();
  std::string text;
  if (IsFlag(opt)) {
    int64_t n;
    const auto b = ParseBool(v);
    text = (b.has_value() ? *b : (absl::SimpleAtoi(v, &n) && n > 0)) ? "true" : "false";
  } else if (IsNumber(opt) && !v.empty()) {
    text = v;
  } else {
    text = YamlScalar(v);
  }
  return absl::StrCat(top_level ? "" : " ", text, "\n");
}

// A key's value as the command would see it: the command line and environment (for the
// commands being run, already in the option), then the config file, then the default.
std::vector<std::string> EffectiveValues(const Flag& flag, const std::vector<CLI::App*>& running,
                                         const ConfigFile& config, const FlagHooks& hooks) {
  const CLI::Option& opt = *flag.option;
  const std::string& key = opt.get_lnames().front();
  const bool runs = std::find(running.begin(), running.end(), flag.command) != running.end();
  if (runs && opt.count() > 0 && !hooks.is_filter(key)) return opt.results();
  if (auto env = Env(EnvName(key))) {
    if (!IsList(opt)) return {*env};
    return absl::StrSplit(*env, ',', absl::SkipEmpty());
  }
  if (const ConfigEntry* e = config.Find(key)) return e->values;
  if (IsList(opt) || opt.get_default_str().empty()) {
    if (IsList(opt) || !IsFlag(opt)) return {};
    return {"false"};
  }
  return {opt.get_default_str()};
}

// Splits `config set` list values as Hubble does: "[a,b]" or "a,b" (CSV).
std::vector<std::string> SplitListValue(const std::string& value) {
  absl::string_view v = value;
  absl::ConsumePrefix(&v, "[");
  absl::ConsumeSuffix(&v, "]");
  std::vector<std::string> out;
  if (v.empty()) return out;
  std::string cur;
  bool quoted = false;
  for (size_t i = 0; i < v.size(); ++i) {
    const char c = v[i];
    if (c == '"') {
      if (quoted && i + 1 < v.size() && v[i + 1] == '"') {
        cur += '"';
        ++i;
      } else {
        quoted = !quoted;
      }
    } else if (c == ',' && !quoted) {
      out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(std::move(cur));
  return out;
}

}  // namespace

const ConfigEntry* ConfigFile::Find(const std::string& key) const {
  for (const ConfigEntry& e : entries) {
    if (e.key == key) return &e;
  }
  return nullptr;
}

std::string DefaultConfigPath() {
  if (auto xdg = Env("XDG_CONFIG_HOME"); xdg && absl::StartsWith(*xdg, "/")) {
    return *xdg + "/flowscope/config.yaml";
  }
  if (auto home = Env("HOME")) return *home + "/.config/flowscope/config.yaml";
  return "";
}

absl::StatusOr<ConfigFile> LoadConfig(const std::string& path, bool required) {
  ConfigFile config;
  config.path = path;
  if (path.empty()) return config;
  std::error_code ec;
  if (!required && !std::filesystem::exists(path, ec)) return config;
  auto content = ReadOperatorFile(path, "config file");
  if (!content.ok()) return content.status();
  config.exists = true;
  YAML::Node root;
  try {
    root = YAML::Load(*content);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("config file ", path, ": line ", e.mark.line + 1, ": ", e.msg));
  }
  if (root.IsNull()) return config;
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config file ", path, ": expected a map of flag names to values"));
  }
  for (const auto& kv : root) {
    if (!kv.first.IsScalar()) {
      return absl::InvalidArgumentError(absl::StrCat("config file ", path, ": line ",
                                                     kv.first.Mark().line + 1,
                                                     ": a key must be a flag name"));
    }
    ConfigEntry e;
    e.key = absl::AsciiStrToLower(kv.first.Scalar());
    const YAML::Node& v = kv.second;
    const auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat("config file ", path, ": ", e.key, ": ", why));
    };
    if (config.Find(e.key) != nullptr) return bad("given twice");
    if (v.IsNull()) continue;  // `key:` alone: not set
    if (v.IsScalar()) {
      e.values.push_back(v.Scalar());
    } else if (v.IsSequence()) {
      e.list = true;
      for (const auto& item : v) {
        if (!item.IsScalar()) return bad("expected a list of values, found a nested list or map");
        e.values.push_back(item.Scalar());
      }
    } else {
      return bad("expected a value or a list of values, found a map");
    }
    config.entries.push_back(std::move(e));
  }
  return config;
}

absl::Status SaveConfigValue(const std::string& path, const std::string& key,
                             const std::optional<ConfigEntry>& value) {
  if (path.empty()) return absl::InvalidArgumentError("config file undefined (no home directory)");
  std::vector<ConfigEntry> entries;
  bool replaced = false;
  if (!key.empty()) {
    auto current = LoadConfig(path, false);
    if (!current.ok()) return current.status();
    for (ConfigEntry& e : current->entries) {
      if (e.key != key) {
        entries.push_back(std::move(e));
      } else if (value.has_value()) {
        entries.push_back(*value);
        replaced = true;
      }
    }
    if (value.has_value() && !replaced) entries.push_back(*value);
  }
  const std::filesystem::path p(path);
  std::error_code ec;
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path(), ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("config file ", path, ": cannot create its directory: ", ec.message()));
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << Emit(entries);
    if (!out.flush()) {
      return absl::InvalidArgumentError(absl::StrCat("config file ", path, ": cannot write ", tmp));
    }
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    return absl::InvalidArgumentError(
        absl::StrCat("config file ", path, ": cannot replace it: ", ec.message()));
  }
  return absl::OkStatus();
}

std::string YamlScalar(const std::string& s) {
  if (s.empty()) return "\"\"";
  bool control = false;
  for (unsigned char c : s) control |= c < 0x20 || c == 0x7f;
  if (control) {
    // YAML's double-quoted style: its escapes for what a plain or single-quoted one cannot hold.
    std::string out = "\"";
    for (unsigned char c : s) {
      if (c == '"' || c == '\\') {
        out += '\\';
        out += static_cast<char>(c);
      } else if (c == '\n') {
        out += "\\n";
      } else if (c == '\t') {
        out += "\\t";
      } else if (c < 0x20 || c == 0x7f) {
        absl::StrAppend(&out, "\\x", absl::Hex(c, absl::kZeroPad2));
      } else {
        out += static_cast<char>(c);
      }
    }
    return out + "\"";
  }
  static const std::set<std::string> kTyped = {
      "~",  "null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE", "y",
      "Y",  "yes",  "Yes",  "YES",  "n",    "N",    "no",   "No",    "NO",    "on",    "On",
      "ON", "off",  "Off",  "OFF",  ".inf", ".Inf", ".INF", "-.inf", ".nan",  ".NaN",  ".NAN"};
  double d;
  // An indicator first ("-", "?" and ":" only when a space follows, as in "- x").
  const bool indicator =
      absl::StrContains(",[]{}#&*!|>'\"%@`", s[0]) ||
      ((s[0] == '-' || s[0] == '?' || s[0] == ':') && (s.size() == 1 || s[1] == ' '));
  const bool plain = kTyped.count(s) == 0 && !absl::SimpleAtod(s, &d) && !indicator &&
                     s.front() != ' ' && s.back() != ' ' && s.back() != ':' &&
                     !absl::StrContains(s, ": ") && !absl::StrContains(s, " #");
  if (plain) return s;
  return absl::StrCat("'", absl::StrReplaceAll(s, {{"'", "''"}}), "'");
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ApplyConfig(
    const ConfigFile& config, CLI::App& app, const FlagHooks& hooks) {
  std::map<std::string, std::vector<Flag>> index;
  IndexFlags(&app, &index);
  const std::vector<CLI::App*> running = RunningCommands(app);
  const auto runs = [&](const CLI::App* a) {
    return std::find(running.begin(), running.end(), a) != running.end();
  };
  std::vector<std::pair<std::string, std::string>> filters;
  const auto add_filter = [&](const Flag& f, const std::vector<std::string>& values,
                              const std::string& from) -> absl::Status {
    const std::string& key = f.option->get_lnames().front();
    if (!IsFlag(*f.option)) {
      for (const std::string& v : values) filters.emplace_back(key, v);
      return absl::OkStatus();
    }
    const auto b = values.size() == 1 ? ParseBool(values[0]) : std::nullopt;
    if (!b.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(from, ": ", key,
                                                     ": expected true or false, not \"",
                                                     Quote(absl::StrJoin(values, ",")), "\""));
    }
    if (*b) filters.emplace_back(key, "");
    return absl::OkStatus();
  };
  // The environment first: FLOWSCOPE_<FLAG> for each flag of the commands being run (of those
  // alone: FLOWSCOPE_OUTPUT=dict is for `observe`, not `list`). Filters' come before the
  // command line's.
  for (const auto& [key, flags] : index) {
    if (IsReservedKey(key)) continue;
    for (const Flag& f : flags) {
      if (!runs(f.command) || f.option->count() > 0) continue;
      auto env = Env(EnvName(key));
      if (!env.has_value()) continue;
      if (hooks.is_filter(key)) {
        if (absl::Status s = add_filter(f, {*env}, EnvName(key)); !s.ok()) return s;
      } else if (absl::Status s = SetOption(f.option, {*env}); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(EnvName(key), ": ", s.message()));
      }
    }
  }
  const std::string from = absl::StrCat("config file ", config.path);
  for (const ConfigEntry& e : config.entries) {
    if (e.key == "config") continue;  // `config view` output read back
    auto it = index.find(e.key);
    if (it == index.end() || IsReservedKey(e.key)) {
      return absl::InvalidArgumentError(absl::StrCat(from, ": unknown key \"", Quote(e.key),
                                                     "\": no command has a --", e.key,
                                                     " flag that a config file can set"));
    }
    for (const Flag& f : it->second) {
      if (!runs(f.command) || f.option->count() > 0) continue;
      if (hooks.is_filter(e.key)) {
        if (Env(EnvName(e.key)).has_value()) continue;
        if (absl::Status s = add_filter(f, e.values, from); !s.ok()) return s;
        continue;
      }
      if (!IsList(*f.option) && e.values.size() != 1) {
        return absl::InvalidArgumentError(
            absl::StrCat(from, ": ", e.key, ": takes one value, not a list"));
      }
      if (absl::Status s = SetOption(f.option, e.values); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(from, ": ", e.key, ": ", s.message()));
      }
    }
  }
  return filters;
}

int RunConfigCommand(CLI::App& app, const std::string& action, const std::vector<std::string>& args,
                     const ConfigFile& config, const FlagHooks& hooks, std::ostream& out,
                     std::ostream& err) {
  std::map<std::string, std::vector<Flag>> index;
  IndexFlags(&app, &index);
  const std::vector<CLI::App*> running = RunningCommands(app);
  const auto find = [&](const std::string& key) -> const Flag* {
    auto it = index.find(key);
    if (it == index.end() || IsReservedKey(key)) return nullptr;
    // The global flag if it is one, else the first command that has the flag.
    for (const Flag& f : it->second) {
      if (f.command == &app) return &f;
    }
    return &it->second.front();
  };
  const auto fail = [&](const std::string& message) {
    err << "flowscope: " << message << "\n";
    return 1;
  };
  const auto view = [&] {
    std::map<std::string, std::string> lines;  // sorted, as Go's YAML encoder writes a map
    for (const auto& [key, flags] : index) {
      const Flag* f = find(key);
      if (f == nullptr || (f->command != &app && config.Find(key) == nullptr)) continue;
      lines[key] = ValueYaml(*f->option, EffectiveValues(*f, running, config, hooks), false);
    }
    lines["config"] = absl::StrCat(" ", YamlScalar(config.path), "\n");
    for (const auto& [key, value] : lines) out << key << ":" << value;
    return 0;
  };
  if (action == "view") return view();
  if (action == "get") {
    if (args.empty()) return view();
    if (args.size() > 1) {
      return fail(absl::StrCat("invalid arguments: get takes 0 or 1 argument: got '",
                               absl::StrJoin(args, " "), "'"));
    }
    if (args[0] == "config") {
      out << YamlScalar(config.path) << "\n";
      return 0;
    }
    const Flag* f = find(args[0]);
    if (f == nullptr) return fail(absl::StrCat("unknown key: ", args[0]));
    out << ValueYaml(*f->option, EffectiveValues(*f, running, config, hooks), true);
    return 0;
  }
  if (action == "reset" && args.empty()) {
    if (absl::Status s = SaveConfigValue(config.path, "", std::nullopt); !s.ok()) {
      return fail(std::string(s.message()));
    }
    return 0;
  }
  if (args.empty() || args.size() > (action == "set" ? 2u : 1u)) {
    return fail(absl::StrCat("invalid arguments: ", action, " takes ",
                             action == "set" ? "KEY [VALUE]" : "[KEY]", ": got '",
                             absl::StrJoin(args, " "), "'"));
  }
  const std::string& key = args[0];
  const Flag* f = find(key);
  if (f == nullptr) return fail(absl::StrCat("unknown key: ", key));
  std::optional<ConfigEntry> entry;
  if (args.size() == 2 && !args[1].empty()) {
    const std::string& value = args[1];
    const CLI::Option& opt = *f->option;
    ConfigEntry e{key, {}, IsList(opt)};
    if (key == "allowlist" || key == "denylist") {
      e.values = {value};  // one JSON filter: its commas are its own
    } else if (e.list) {
      e.values = SplitListValue(value);
    } else {
      e.values = {value};
    }
    const auto refuse = [&](absl::string_view why) {
      return fail(absl::StrCat("cannot assign value=", value, " for key=", key, ": ", why));
    };
    e.plain = IsNumber(opt);
    if (IsFlag(opt)) {
      if (!ParseBool(value).has_value()) return refuse("expected true or false");
      e.values = {*ParseBool(value) ? "true" : "false"};
      e.plain = true;
    } else if (hooks.is_filter(key)) {
      for (const std::string& v : e.values) {
        if (absl::Status s = hooks.check_filter(key, v); !s.ok()) return refuse(s.message());
      }
    } else if (absl::Status s = SetOption(f->option, e.values); !s.ok()) {
      return refuse(s.message());
    }
    entry = std::move(e);
  }
  if (absl::Status s = SaveConfigValue(config.path, key, entry); !s.ok()) {
    return fail(std::string(s.message()));
  }
  return 0;
}

namespace {

struct CommandInfo {
  std::string path;  // "observe", "list nodes"; "" for the root
  const CLI::App* app;
  std::vector<std::string> subcommands;     // names and aliases
  std::vector<std::string> positional;      // fixed values of its positional argument
  std::vector<const CLI::Option*> options;  // its own and its parents' (fallthrough)
};

void CollectCommands(const CLI::App* app, const std::string& path,
                     std::vector<const CLI::Option*> inherited, const FlagHooks& hooks,
                     std::vector<CommandInfo>* out) {
  CommandInfo info{path, app, {}, hooks.fixed_values(*app, ""), {}};
  for (const CLI::Option* opt : app->get_options()) {
    if (opt->nonpositional()) inherited.push_back(opt);
  }
  info.options = inherited;
  std::vector<std::pair<const CLI::App*, std::string>> subs;
  for (const CLI::App* sub : app->get_subcommands({})) {
    info.subcommands.push_back(sub->get_name());
    for (const std::string& alias : sub->get_aliases()) info.subcommands.push_back(alias);
    subs.emplace_back(sub, path.empty() ? sub->get_name() : path + " " + sub->get_name());
  }
  out->push_back(std::move(info));
  for (const auto& [sub, sub_path] : subs) {
    CollectCommands(sub, sub_path, inherited, hooks, out);
  }
}

std::vector<std::string> Spellings(const CLI::Option& opt) {
  std::vector<std::string> s;
  for (const std::string& n : opt.get_lnames()) s.push_back("--" + n);
  for (const std::string& n : opt.get_snames()) s.push_back("-" + n);
  return s;
}

std::string ShellWords(const std::vector<std::string>& words) { return absl::StrJoin(words, " "); }

// Single-quoted for sh (and fish).
std::string ShQuote(const std::string& s) {
  return absl::StrCat("'", absl::StrReplaceAll(s, {{"'", "'\\''"}}), "'");
}

std::string BashScript(const std::vector<CommandInfo>& commands, const FlagHooks& hooks) {
  std::string subs, flags, value_flags, values;
  for (const CommandInfo& c : commands) {
    const std::string label = absl::StrCat("\"", c.path, "\")");
    std::vector<std::string> all, takes_value;
    for (const CLI::Option* opt : c.options) {
      for (const std::string& s : Spellings(*opt)) {
        all.push_back(s);
        if (!IsFlag(*opt)) takes_value.push_back(s);
      }
      if (IsFlag(*opt)) continue;
      std::vector<std::string> fixed =
          hooks.fixed_values(*c.app, opt->get_lnames().empty() ? "" : opt->get_lnames().front());
      if (fixed.empty()) continue;
      absl::StrAppend(&values, "    \"", c.path, "|",
                      absl::StrJoin(Spellings(*opt), "\"|\"" + c.path + "|"), "\") echo ",
                      ShQuote(ShellWords(fixed)), " ;;\n");
    }
    std::vector<std::string> words = c.subcommands;
    words.insert(words.end(), c.positional.begin(), c.positional.end());
    absl::StrAppend(&subs, "    ", label, " echo ", ShQuote(ShellWords(words)), " ;;\n");
    absl::StrAppend(&flags, "    ", label, " echo ", ShQuote(ShellWords(all)), " ;;\n");
    absl::StrAppend(&value_flags, "    ", label, " echo ", ShQuote(ShellWords(takes_value)),
                    " ;;\n");
  }
  return absl::StrCat(
      "# bash completion for flowscope (generated by `flowscope completion bash`)\n"
      "#   source <(flowscope completion bash)\n"
      "_flowscope_words() {\n  case \"$1\" in\n",
      subs,
      "  esac\n}\n"
      "_flowscope_flags() {\n  case \"$1\" in\n",
      flags,
      "  esac\n}\n"
      "_flowscope_value_flags() {\n  case \"$1\" in\n",
      value_flags,
      "  esac\n}\n"
      "_flowscope_values() {\n  case \"$1|$2\" in\n",
      values,
      "  esac\n}\n"
      "_flowscope_has() {\n"
      "  local w\n"
      "  for w in $1; do [[ \"$w\" == \"$2\" ]] && return 0; done\n"
      "  return 1\n"
      "}\n"
      "_flowscope() {\n"
      "  local cur=\"${COMP_WORDS[COMP_CWORD]}\" prev=\"\" path=\"\" i w skip=0\n"
      "  (( COMP_CWORD > 0 )) && prev=\"${COMP_WORDS[COMP_CWORD-1]}\"\n"
      "  for (( i = 1; i < COMP_CWORD; i++ )); do\n"
      "    w=\"${COMP_WORDS[i]}\"\n"
      "    if (( skip )); then skip=0; continue; fi\n"
      "    if [[ \"$w\" == -* ]]; then\n"
      "      [[ \"$w\" != *=* ]] && _flowscope_has \"$(_flowscope_value_flags \"$path\")\" \"$w\" "
      "&& skip=1\n"
      "    elif _flowscope_has \"$(_flowscope_words \"$path\")\" \"$w\"; then\n"
      "      local next=\"${path:+$path }$w\"\n"
      "      [[ -n \"$(_flowscope_flags \"$next\")\" ]] && path=\"$next\"\n"
      "    fi\n"
      "  done\n"
      "  if [[ \"$prev\" == -* ]] && _flowscope_has \"$(_flowscope_value_flags \"$path\")\" "
      "\"$prev\"; then\n"
      "    local vals\n"
      "    vals=\"$(_flowscope_values \"$path\" \"$prev\")\"\n"
      "    if [[ -n \"$vals\" ]]; then\n"
      "      COMPREPLY=( $(compgen -W \"$vals\" -- \"$cur\") )\n"
      "    else\n"
      "      COMPREPLY=( $(compgen -f -- \"$cur\") )\n"
      "    fi\n"
      "    return 0\n"
      "  fi\n"
      "  if [[ \"$cur\" == -* ]]; then\n"
      "    COMPREPLY=( $(compgen -W \"$(_flowscope_flags \"$path\")\" -- \"$cur\") )\n"
      "  else\n"
      "    COMPREPLY=( $(compgen -W \"$(_flowscope_words \"$path\")\" -- \"$cur\") )\n"
      "  fi\n"
      "  return 0\n"
      "}\n"
      "complete -o default -F _flowscope flowscope\n");
}

std::string FishScript(const std::vector<CommandInfo>& commands, const FlagHooks& hooks) {
  std::string s =
      "# fish completion for flowscope (generated by `flowscope completion fish`)\n"
      "#   flowscope completion fish | source\n"
      "function __flowscope_path\n"
      "    set -l words (commandline -opc)\n"
      "    set -e words[1]\n"
      "    set -l path\n"
      "    for w in $words\n"
      "        if not string match -q -- '-*' $w\n"
      "            if contains -- \"$path $w\" $__flowscope_commands\n"
      "                set path \"$path $w\"\n"
      "            end\n"
      "        end\n"
      "    end\n"
      "    echo \"$path\"\n"
      "end\n"
      "function __flowscope_at\n"
      "    test (__flowscope_path) = \"$argv[1]\"\n"
      "end\n"
      "complete -c flowscope -f\n";
  std::vector<std::string> paths;
  for (const CommandInfo& c : commands)
    paths.push_back(ShQuote(c.path.empty() ? "" : " " + c.path));
  absl::StrAppend(&s, "set -g __flowscope_commands ", absl::StrJoin(paths, " "), "\n");
  for (const CommandInfo& c : commands) {
    const std::string at = absl::StrCat(
        "-n ",
        ShQuote(absl::StrCat("__flowscope_at ", ShQuote(c.path.empty() ? "" : " " + c.path))));
    for (const CLI::App* sub : c.app->get_subcommands({})) {
      absl::StrAppend(&s, "complete -c flowscope ", at, " -a ", ShQuote(sub->get_name()), " -d ",
                      ShQuote(sub->get_description()), "\n");
    }
    for (const std::string& v : c.positional) {
      absl::StrAppend(&s, "complete -c flowscope ", at, " -a ", ShQuote(v), "\n");
    }
    for (const CLI::Option* opt : c.options) {
      std::string line = absl::StrCat("complete -c flowscope ", at);
      for (const std::string& n : opt->get_lnames()) absl::StrAppend(&line, " -l ", n);
      for (const std::string& n : opt->get_snames()) absl::StrAppend(&line, " -s ", n);
      if (!IsFlag(*opt)) {
        const auto fixed =
            hooks.fixed_values(*c.app, opt->get_lnames().empty() ? "" : opt->get_lnames().front());
        absl::StrAppend(
            &line, fixed.empty() ? " -r -F" : absl::StrCat(" -x -a ", ShQuote(ShellWords(fixed))));
      }
      absl::StrAppend(&s, line, " -d ", ShQuote(opt->get_description()), "\n");
    }
  }
  return s;
}

}  // namespace

absl::StatusOr<std::string> CompletionScript(const CLI::App& app, const std::string& shell,
                                             const FlagHooks& hooks) {
  std::vector<CommandInfo> commands;
  CollectCommands(&app, "", {}, hooks, &commands);
  if (shell == "bash") return BashScript(commands, hooks);
  if (shell == "zsh") {
    // zsh runs bash completion functions through bashcompinit.
    return absl::StrCat(
        "# zsh completion for flowscope (generated by `flowscope completion zsh`)\n"
        "#   source <(flowscope completion zsh)\n"
        "autoload -U +X bashcompinit && bashcompinit\n",
        BashScript(commands, hooks));
  }
  if (shell == "fish") return FishScript(commands, hooks);
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported shell \"", Quote(shell), "\": expected bash, zsh or fish"));
}

}  // namespace flowscope::cli
