// Logging hooks (modelscope/trainers/hooks/logger/, iter_timer_hook.py): IterTimerHook measures,
// the loggers average the log buffer over their interval and write it: TextLoggerHook as console
// lines and <work_dir>/<timestamp>.log.json, TensorboardHook as TensorBoard event files.
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <set>
#include <stdexcept>

#include "builtin_hooks.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/log.h"
#include "ms/trainer/tensorboard.h"

namespace ms::trainer {
namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

class IterTimerHook final : public Hook {
 public:
  explicit IterTimerHook(const nlohmann::json& options) {
    ComponentOptions(options, "IterTimerHook").check_all_read();
  }
  std::string type() const override { return "IterTimerHook"; }
  int default_priority() const override { return priority::kLow; }
  void before_train_epoch(Trainer&) override { start_ = now_seconds(); }
  void before_train_iter(Trainer& t) override {
    t.log_buffer().update("data_load_time", now_seconds() - start_);
  }
  void after_train_iter(Trainer& t) override {
    t.log_buffer().update("iter_time", now_seconds() - start_);
    start_ = now_seconds();
  }

 private:
  double start_ = 0;
};

// A list-of-names option that may also be given as one name (ignore_rounding_keys, skip_keys).
std::vector<std::string> read_names(ComponentOptions& o, const char* key,
                                    std::vector<std::string> fallback, const char* hook) {
  const nlohmann::json v = o.value(key);
  if (v.is_null()) return fallback;
  if (v.is_string()) return {v.get<std::string>()};
  std::vector<std::string> out;
  if (v.is_array())
    for (const auto& k : v)
      if (k.is_string()) out.push_back(k.get<std::string>());
  if (!v.is_array() || out.size() != v.size())
    fail(ErrorCode::kConfig, "{}: {} is a name or a list of names", hook, key);
  return out;
}

bool is_logger(const Hook& hook) {
  return hook.type() == "TextLoggerHook" || hook.type() == "TensorboardHook";
}

// What every logger shares (LoggerHook in logger/base.py): when to average and when to log.
class LoggerHook : public Hook {
 public:
  int default_priority() const override { return priority::kVeryLow; }

  void before_run(Trainer& t) override {
    // The last logger clears the buffer's output after logging it.
    for (auto it = t.hooks().hooks().rbegin(); it != t.hooks().hooks().rend(); ++it) {
      if (!is_logger(**it)) continue;
      if (it->get() == this) reset_flag_ = true;
      break;
    }
  }
  void before_train_epoch(Trainer& t) override { t.log_buffer().clear(); }
  void after_train_iter(Trainer& t) override {
    if ((by_epoch_ && every_n_inner_iters(t, interval_)) ||
        (!by_epoch_ && every_n_iters(t, interval_)) || (end_of_epoch(t) && !ignore_last_)) {
      t.log_buffer().average(static_cast<std::size_t>(interval_));
    }
    flush(t);
  }
  void after_train_epoch(Trainer& t) override { flush(t); }

 protected:
  void read_common(ComponentOptions& o, std::int64_t default_interval, const char* hook) {
    interval_ = positive(o, "interval", default_interval, hook);
    ignore_last_ = o.flag("ignore_last", true);
    reset_flag_ = o.flag("reset_flag", false);
    by_epoch_ = o.flag("by_epoch", true);
  }
  virtual void log(Trainer& t) = 0;
  // The epoch and iteration a log line carries (get_epoch / get_iter in logger/base.py).
  std::int64_t log_iter(const Trainer& t, bool inner) const {
    return by_epoch_ && inner ? t.inner_iter() + 1 : t.iter() + 1;
  }

  std::int64_t interval_ = 10;
  bool ignore_last_ = true, reset_flag_ = false, by_epoch_ = true;

 private:
  void flush(Trainer& t) {
    if (!t.log_buffer().ready) return;
    if (t.is_main()) log(t);  // ModelScope's loggers are master_only
    if (reset_flag_) t.log_buffer().clear_output();
  }
};

// A float as Python's repr writes it (json.dump of a float): shortest round trip, ".0" for whole
// numbers, NaN / Infinity as Python's json module spells them.
std::string python_float(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  std::string s = fmt::format("{}", v);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

// round(v, digits) as Python rounds: the correctly rounded decimal, read back.
double python_round(double v, int digits) {
  // Past 330 digits no double changes (the smallest is 4.9e-324).
  if (!std::isfinite(v) || digits > 330) return v;
  try {
    return std::stod(fmt::format("{:.{}f}", v, digits));
  } catch (const std::out_of_range&) {  // a subnormal result: stod reports it, Python keeps it
    return v;
  }
}

// datetime.timedelta(seconds=s) as str() writes it: "H:MM:SS", "N day(s), H:MM:SS".
std::string timedelta(std::int64_t s) {
  const std::int64_t days = s / 86400;
  s %= 86400;
  std::string out = fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
  if (days > 0) out = fmt::format("{} day{}, ", days, days == 1 ? "" : "s") + out;
  return out;
}

class TextLoggerHook final : public LoggerHook {
 public:
  explicit TextLoggerHook(const nlohmann::json& options) {
    ComponentOptions o(options, "TextLoggerHook");
    read_common(o, 10, "TextLoggerHook");
    out_dir_ = o.text("out_dir", "");
    ignore_rounding_ = read_names(o, "ignore_rounding_keys", {"lr"}, "TextLoggerHook");
    const std::int64_t digits = o.integer("rounding_digits", 5);
    // Python's round() takes negative digits too (to tens, hundreds), which no log of losses
    // and rates wants; refused here rather than failing at the first line mid-run.
    MS_CHECK(digits >= 0 && digits <= 400, ErrorCode::kConfig,
             "TextLoggerHook.rounding_digits is {}: give 0 or more digits after the point", digits);
    rounding_digits_ = static_cast<int>(digits);
    o.check_all_read();
  }
  std::string type() const override { return "TextLoggerHook"; }

  void before_run(Trainer& t) override {
    LoggerHook::before_run(t);
    if (out_dir_.empty()) out_dir_ = t.work_dir();
    if (!t.is_main()) return;
    make_directories(out_dir_, "TextLoggerHook.out_dir");
    json_path_ = out_dir_ / (t.timestamp() + ".log.json");
    log::info("text logs will be saved to {}", out_dir_.string());
    start_iter_ = t.iter();
  }

 private:
  bool rounded(const std::string& key) const {
    return std::find(ignore_rounding_.begin(), ignore_rounding_.end(), key) ==
           ignore_rounding_.end();
  }

  void log(Trainer& t) override {
    const bool train = t.mode() == Mode::kTrain;
    Json entry = Json::object();
    entry["mode"] = train ? "train" : "eval";
    entry["epoch"] = t.epoch() + 1;
    entry["iter"] = train ? log_iter(t, true) : t.iters_per_epoch();
    for (const auto& [key, value] : t.log_buffer().output().items()) entry[key] = value;
    console_line(t, entry);
    dump(entry);
  }

  // As ModelScope's TextLoggerHook: the keys a train line has shown in its head (lr and the
  // times) stay out of every later line's list, eval lines included; floats there get 4 digits,
  // but for ignore_rounding_keys (lr: an evaluation before any train line shows the rate whole).
  void console_line(Trainer& t, const Json& entry) {
    std::string line;
    std::set<std::string>& shown = logged_keys_;
    if (entry["mode"] == "train") {
      line = by_epoch_
                 ? fmt::format("epoch [{}][{}/{}]\t", entry["epoch"].get<std::int64_t>(),
                               entry["iter"].get<std::int64_t>(), t.iters_per_epoch())
                 : fmt::format("iter [{}/{}]\t", entry["iter"].get<std::int64_t>(), t.max_iters());
      if (entry.contains("lr")) {
        line += fmt::format("lr: {:.3e}, ", entry["lr"].get<double>());
        shown.insert("lr");
      }
      if (entry.contains("iter_time") && entry.contains("data_load_time")) {
        time_sec_tot_ += entry["iter_time"].get<double>() * static_cast<double>(interval_);
        const double avg = time_sec_tot_ / static_cast<double>(t.iter() - start_iter_ + 1);
        const double eta = avg * static_cast<double>(t.max_iters() - t.iter() - 1);
        line +=
            fmt::format("eta: {}, iter_time: {:.3f}, data_load_time: {:.3f}, ",
                        timedelta(static_cast<std::int64_t>(eta)), entry["iter_time"].get<double>(),
                        entry["data_load_time"].get<double>());
        shown.insert("iter_time");
        shown.insert("data_load_time");
      }
    } else {
      line = by_epoch_ ? fmt::format("epoch(eval) [{}][{}]\t", entry["epoch"].get<std::int64_t>(),
                                     entry["iter"].get<std::int64_t>())
                       : fmt::format("iter(eval) [{}]\t", entry["iter"].get<std::int64_t>());
    }
    std::vector<std::string> items;
    for (const auto& [key, value] : entry.items()) {
      if (shown.count(key) > 0) continue;
      if (value.is_number_float()) {
        const double v = value.get<double>();
        items.push_back(rounded(key) ? fmt::format("{}: {:.4f}", key, v)
                                     : fmt::format("{}: {}", key, python_float(v)));
      } else {
        items.push_back(fmt::format("{}: {}", key,
                                    value.is_string() ? value.get<std::string>() : value.dump()));
      }
    }
    t.console(line + join(items, ", "));
  }

  // One JSON line as Python's json.dump writes the OrderedDict (", " and ": " separators).
  void dump(const Json& entry) {
    std::vector<std::string> members;
    for (const auto& [key, value] : entry.items()) {
      std::string text;
      if (value.is_number_float()) {
        const double v = value.get<double>();
        text = python_float(rounded(key) ? python_round(v, rounding_digits_) : v);
      } else {
        text = value.dump();
      }
      members.push_back(Json(key).dump() + ": " + text);
    }
    // Whole lines only: a line cut by a full disk would make the log unreadable as JSON lines.
    append_whole(json_path_, "{" + join(members, ", ") + "}\n");
  }

  std::filesystem::path out_dir_, json_path_;
  std::vector<std::string> ignore_rounding_;
  std::set<std::string> logged_keys_ = {"mode", "epoch", "iter"};
  int rounding_digits_ = 5;
  double time_sec_tot_ = 0;
  std::int64_t start_iter_ = 0;
};

class TensorboardHook final : public LoggerHook {
 public:
  explicit TensorboardHook(const nlohmann::json& options) {
    ComponentOptions o(options, "TensorboardHook");
    read_common(o, 10, "TensorboardHook");
    out_dir_ = o.text("out_dir", "");
    skip_keys_ = read_names(o, "skip_keys", {"iter_time", "data_load_time"}, "TensorboardHook");
    o.check_all_read();
  }
  std::string type() const override { return "TensorboardHook"; }

  void before_run(Trainer& t) override {
    LoggerHook::before_run(t);
    if (out_dir_.empty()) out_dir_ = t.work_dir() / "tensorboard_output";
    if (!t.is_main()) return;
    make_directories(out_dir_, "TensorboardHook.out_dir");
    writer_ = std::make_unique<TensorboardWriter>(out_dir_);
  }
  void after_run(Trainer&) override {
    if (writer_) writer_->flush();
  }

 private:
  void log(Trainer& t) override {
    if (!started_) {
      // From this run's first step on, what older files in the folder hold (a killed run now
      // resumed, or a run started over with --overwrite) is superseded. Written with the first
      // scalars, when the run's start is known whatever the hooks' order (a resumed checkpoint
      // is loaded in before_run).
      writer_->add_session_start(t.first_iter() + 1);
      started_ = true;
    }
    for (const auto& [key, value] : t.log_buffer().output().items()) {
      if (std::find(skip_keys_.begin(), skip_keys_.end(), key) != skip_keys_.end()) continue;
      if (value.is_number()) writer_->add_scalar(key, value.get<double>(), log_iter(t, false));
    }
    writer_->flush();
  }

  std::filesystem::path out_dir_;
  std::vector<std::string> skip_keys_;
  std::unique_ptr<TensorboardWriter> writer_;
  bool started_ = false;  // the SessionLog START is written
};

}  // namespace

void register_logger_hooks(Registry<HookFactory>& r) {
  r.add(
      "TextLoggerHook",
      [](const nlohmann::json& o) -> std::shared_ptr<Hook> {
        return std::make_shared<TextLoggerHook>(o);
      },
      "console lines and <work_dir>/<timestamp>.log.json every interval iterations");
  r.add(
      "TensorboardHook",
      [](const nlohmann::json& o) -> std::shared_ptr<Hook> {
        return std::make_shared<TensorboardHook>(o);
      },
      "TensorBoard scalars under <work_dir>/tensorboard_output (out_dir, interval, skip_keys)");
  r.add(
      "IterTimerHook",
      [](const nlohmann::json& o) -> std::shared_ptr<Hook> {
        return std::make_shared<IterTimerHook>(o);
      },
      "logs iter_time and data_load_time");
}

}  // namespace ms::trainer
