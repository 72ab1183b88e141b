// Checkpoints (modelscope/trainers/hooks/checkpoint/): CheckpointHook saves every `interval` epochs
// or iterations, BestCkptSaverHook after an evaluation that improves a metric, LoadCheckpointHook
// restores one before the run. Files: <prefix>.pth (the model's state dict) and
// <prefix>_trainer_state.pth, each written atomically, then latest_checkpoint.json naming them; the
// inference-ready folder output/ (output_best/) is rewritten with each save.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <optional>

#include "builtin_hooks.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/log.h"
#include "ms/core/text.h"

namespace ms::trainer {
namespace {

using tensor::CheckpointValue;

// Writes <prefix>.pth and (when asked) <prefix>_trainer_state.pth, on rank 0 only (every rank
// calls it: the trainer state gathers the ranks' RNG states). Returns whether it wrote.
bool save_checkpoint_files(Trainer& t, const std::filesystem::path& prefix, bool trainer_state) {
  std::optional<CheckpointValue> state;
  if (trainer_state) state = t.trainer_state();
  if (!t.is_main()) return false;
  make_directories(prefix.parent_path(), "the checkpoint folder");
  tensor::save_checkpoint(model_file(prefix), CheckpointValue::state_dict(t.model_state()));
  if (state) tensor::save_checkpoint(trainer_state_file(prefix), *state);
  return true;
}

void remove_checkpoint_files(const std::filesystem::path& prefix) {
  std::error_code ec;
  std::filesystem::remove(model_file(prefix), ec);
  std::filesystem::remove(trainer_state_file(prefix), ec);
}

// The output folder of a hook: output_dir, else <save_dir>/<output_sub_dir>.
struct OutputPlace {
  std::filesystem::path save_dir, output_dir;
  std::string output_sub_dir;
};

// A name a hook puts in its folder (output_sub_dir, save_file_name) is a name there: a path that
// climbs out or starts at the root would write wherever a configuration says (a hub model's
// configuration.json is merged into the run's).
std::string plain_name(ComponentOptions& o, const char* hook, const char* key,
                       const std::string& fallback) {
  const std::string name = o.text(key, fallback);
  const std::filesystem::path path(name);
  bool climbs = false;
  for (const auto& part : path) climbs = climbs || part == "..";
  if (path.is_absolute() || climbs || (name.empty() && !fallback.empty()) || name == ".") {
    throw Error(ErrorCode::kConfig,
                fmt::format("{}: {} '{}' is not a name inside the work dir", hook, key, name),
                fmt::format("give a folder or file name such as '{}' (output_dir / save_dir "
                            "name other folders)",
                            fallback.empty() ? "best_model.pth" : fallback));
  }
  return name;
}

OutputPlace read_place(ComponentOptions& o, const char* hook, const std::string& default_sub_dir) {
  OutputPlace p;
  p.save_dir = o.text("save_dir", "");
  p.output_dir = o.text("output_dir", "");
  p.output_sub_dir = plain_name(o, hook, "output_sub_dir", default_sub_dir);
  return p;
}

void resolve_place(OutputPlace& p, const Trainer& t) {
  if (p.save_dir.empty()) p.save_dir = t.work_dir();
  if (p.output_dir.empty()) p.output_dir = p.save_dir / p.output_sub_dir;
}

// A hook that writes checkpoints and rewrites an output folder (CheckpointHook,
// BestCkptSaverHook). Two of them writing one output folder would each replace the other's model
// there, and two best-checkpoint hooks naming their checkpoints alike (one save_file_name, or one
// metric_key) each other's checkpoints, and delete them: refused when the run starts.
class SavingHook : public Hook {
 protected:
  // Whether the hook writes anything (CheckpointHook with save_strategy "no" does not).
  virtual bool writes() const { return true; }
  // The one name its checkpoints take (BestCkptSaverHook's save_file_name), if one.
  virtual std::optional<std::string> fixed_name() const { return std::nullopt; }
  // Whether one of its checkpoints may be named `name` (the prefix before ".pth").
  virtual bool may_name(const std::string& name) const = 0;
  // Its names for an error: "epoch_N / iter_N".
  virtual std::string names() const = 0;
  // Whether its names and `other`'s are one pattern (two best-checkpoint hooks of one metric).
  virtual bool same_names(const SavingHook& other) const {
    (void)other;
    return false;
  }

  void resolve_and_check_place(Trainer& t) {
    resolve_place(place_, t);
    if (!writes()) return;
    for (const auto& hook : t.hooks().hooks()) {
      const auto* other = dynamic_cast<const SavingHook*>(hook.get());
      if (other == nullptr || other == this || !other->writes()) continue;
      OutputPlace theirs = other->place_;
      resolve_place(theirs, t);
      const bool shared_output = same_folder(theirs.output_dir, place_.output_dir);
      const auto mine = fixed_name(), their = other->fixed_name();
      const bool shared_names =
          same_folder(theirs.save_dir, place_.save_dir) &&
          ((mine && other->may_write(*mine)) || (their && may_write(*their)) || same_names(*other));
      if (!shared_output && !shared_names) continue;
      throw Error(ErrorCode::kConfig,
                  fmt::format("{}: {} and {} would both write {}", t.config().source(), type(),
                              other->type(),
                              shared_output ? place_.output_dir.string()
                                            : fmt::format("the checkpoints {} in {}",
                                                          mine    ? *mine
                                                          : their ? *their
                                                                  : names(),
                                                          place_.save_dir.string())),
                  shared_output
                      ? "give one of them another output_sub_dir (e.g. \"output_accuracy\"; a "
                        "CheckpointHook is there by default, writing output/)"
                      : fmt::format("give one of them a save_file_name of its own (the other "
                                    "names its checkpoints {})",
                                    mine ? other->names() : names()));
    }
  }

  OutputPlace place_;

 private:
  // Whether a file of `name` (a prefix: <name>.pth) may be one of this hook's: its weights, or
  // the trainer state beside them (<prefix>_trainer_state.pth).
  bool may_write(const std::string& name) const {
    constexpr std::string_view kState = "_trainer_state";
    return may_name(name) ||
           (ends_with(name, kState) && may_name(name.substr(0, name.size() - kState.size())));
  }

  // Whether two paths name one folder, whichever way each is written (relative, "out/", through
  // a link, a link to a folder not made yet).
  static bool same_folder(const std::filesystem::path& a, const std::filesystem::path& b) {
    const auto folder = [](std::filesystem::path p) {
      p = std::filesystem::absolute(p);
      if (!p.has_filename()) p = p.parent_path();
      std::error_code ec;
      for (int links = 0; links < 40 && std::filesystem::is_symlink(p, ec); ++links) {
        const std::filesystem::path target = std::filesystem::read_symlink(p, ec);
        if (ec) break;
        p = target.is_absolute() ? target : p.parent_path() / target;
      }
      // (A folder it cannot look into: as written, never "" for both.)
      std::filesystem::path canonical = std::filesystem::weakly_canonical(p, ec);
      if (ec) canonical = p.lexically_normal();
      return canonical.has_filename() ? canonical : canonical.parent_path();
    };
    return folder(a) == folder(b);
  }
};

void write_eval_result(const Trainer& t, const std::filesystem::path& output_dir) {
  if (t.metric_values().is_null()) return;
  write_file_atomic(output_dir / "eval_result.txt", t.metric_values().dump());
}

// Saves new weights into output/. The older weights' eval_result.txt goes first, so that a kill
// part way never leaves it beside weights it does not describe; it is written anew after the
// weights when an evaluation has seen these.
void replace_output(Trainer& t, const std::filesystem::path& output_dir, bool evaluated) {
  std::error_code ignored;
  std::filesystem::remove(output_dir / "eval_result.txt", ignored);
  t.save_output(output_dir);
  if (evaluated) write_eval_result(t, output_dir);
}

// push_to_hub is refused (`ms upload` pushes output/ after training); the other hub keys only
// matter with it.
void refuse_push(ComponentOptions& o, const char* hook) {
  if (o.flag("push_to_hub", false))
    throw Error(ErrorCode::kConfig, fmt::format("{}: push_to_hub is not supported by ms", hook),
                "push <work_dir>/output with `ms upload OWNER/NAME <work_dir>/output` after "
                "training");
  for (const char* key :
       {"hub_repo_id", "hub_token", "private_hub", "hub_revision", "upload_strategy"})
    (void)o.value(key);
}

class CheckpointHook final : public SavingHook {
 public:
  explicit CheckpointHook(const nlohmann::json& options) {
    ComponentOptions o(options, "CheckpointHook");
    // 0: no periodic saves, only the last one (save_last), as in ModelScope.
    interval_ = o.integer("interval", 1);
    MS_CHECK(interval_ >= 0, ErrorCode::kConfig,
             "CheckpointHook: interval must be 0 (only the last) or positive, got {}", interval_);
    const nlohmann::json strategy = o.value("save_strategy");
    no_save_ = strategy.is_string() && strategy == "no";
    if (no_save_) {
      (void)o.value("by_epoch");  // no periodic saves: by_epoch (documented) has nothing to time
    } else {
      by_epoch_ = read_by_epoch(o, "save_strategy");
    }
    place_ = read_place(o, "CheckpointHook", "output");
    save_last_ = o.flag("save_last", true);
    const nlohmann::json max = o.value("max_checkpoint_num");
    if (!max.is_null())
      max_checkpoints_ = std::max<std::int64_t>(1, o.integer("max_checkpoint_num"));
    save_trainer_state_ = o.flag("save_trainer_state", true);
    refuse_push(o, "CheckpointHook");
    o.check_all_read();
  }
  std::string type() const override { return "CheckpointHook"; }
  int default_priority() const override { return priority::kLow; }
  bool writes() const override { return !no_save_; }
  bool may_name(const std::string& name) const override {
    for (const std::string stem : {"epoch_", "iter_"}) {
      if (name.rfind(stem, 0) == 0 && name.size() > stem.size() &&
          name.find_first_not_of("0123456789", stem.size()) == std::string::npos)
        return true;
    }
    return false;
  }
  std::string names() const override { return "epoch_<N> / iter_<N>"; }

  void before_run(Trainer& t) override {
    resolve_and_check_place(t);
    t.set_output_dir(place_.output_dir);
    // A run resumed from a by-iteration checkpoint taken at an epoch's last step evaluates that
    // epoch first: output/ holds those weights (written before the checkpoint was named), and a
    // kill before their eval_result.txt was written leaves it to this evaluation to write.
    output_has_weights_ =
        t.iter() > 0 && std::filesystem::exists(place_.output_dir / "model.safetensors");
    if (drop_obsolete_on_start_) drop_checkpoints(obsolete(), t.is_main());
    if (!t.is_main()) return;
    make_directories(place_.save_dir, "CheckpointHook.save_dir");
    log::info("checkpoints will be saved to {}", place_.save_dir.string());
  }
  void after_train_epoch(Trainer& t) override {
    if (!no_save_ && by_epoch_ &&
        (every_n_epochs(t, interval_) || (save_last_ && is_last_epoch(t))))
      save(t, fmt::format("epoch_{}", t.epoch() + 1));
  }
  void after_train_iter(Trainer& t) override {
    if (!no_save_ && !by_epoch_ && (every_n_iters(t, interval_) || (save_last_ && is_last_iter(t))))
      save(t, fmt::format("iter_{}", t.iter() + 1));
  }
  // eval_result.txt describes the weights beside it in output/: an evaluation of weights that
  // output/ holds (a by-iteration checkpoint at an epoch's last step, evaluated at its end) writes
  // it; a save of weights no evaluation has seen yet removes the older one's.
  void before_train_iter(Trainer&) override { weights_evaluated_ = output_has_weights_ = false; }
  void after_val(Trainer& t) override {
    weights_evaluated_ = true;
    if (output_has_weights_ && t.is_main()) write_eval_result(t, place_.output_dir);
  }

  CheckpointValue state_dict() const override {
    CheckpointValue history = CheckpointValue::list();
    for (const std::string& h : history_) history.push_back(h);
    return CheckpointValue::dict({{"history_checkpoints", std::move(history)}});
  }
  void load_state_dict(const CheckpointValue& state) override {
    history_.clear();
    if (const CheckpointValue* h = state.find("history_checkpoints"))
      for (const auto& item : h->items()) history_.push_back(item.as_string());
    // The checkpoints this one replaced are in its history until they are deleted (after it is
    // named): a run killed before that deletes them now, or none would.
    drop_obsolete_on_start_ = true;
  }

 private:
  // The oldest checkpoints past max_checkpoint_num.
  std::vector<std::string> obsolete() const {
    const auto keep = static_cast<std::size_t>(max_checkpoints_);
    if (max_checkpoints_ <= 0 || history_.size() <= keep) return {};
    return {history_.begin(), history_.end() - static_cast<std::ptrdiff_t>(keep)};
  }
  // Deletes checkpoints' files (rank 0, which wrote them), then forgets them; a kill part way
  // leaves them in the history the checkpoint's trainer state holds, so a resume finishes it.
  void drop_checkpoints(const std::vector<std::string>& names, bool main) {
    for (const std::string& old : names) {
      if (main) {
        log::info("deleting checkpoint {}", old);
        remove_checkpoint_files(place_.save_dir / old);
      }
      history_.erase(std::find(history_.begin(), history_.end(), old));
    }
  }

  // Records the checkpoint now (so that the trainer state it holds lists it, with those it
  // replaces until they are deleted), and writes the files when every hook of the stage has run.
  void save(Trainer& t, const std::string& name) {
    history_.push_back(name);
    t.at_stage_end([this, &t, name] {
      if (t.is_main()) log::info("saving checkpoint {}", name);
      if (!save_checkpoint_files(t, place_.save_dir / name, save_trainer_state_)) return;
      replace_output(t, place_.output_dir, weights_evaluated_);
      output_has_weights_ = true;
    });
    t.after_stage_saves([this, &t, name] {
      if (!t.is_main()) return;
      // Only now, with this stage's files all whole (the best checkpoint's too), does the work
      // dir point at them (what --resume reads); the checkpoints it no longer needs go after.
      if (save_trainer_state_ && place_.save_dir == t.work_dir()) {
        const Json pointer = {{"prefix", name}, {"epoch", t.epoch() + 1}, {"iter", t.iter() + 1}};
        write_file_atomic(t.work_dir() / kLatestCheckpointFile, pointer.dump() + "\n");
      }
    });
    t.after_stage_saves([this, &t] { drop_checkpoints(obsolete(), t.is_main()); });
  }

  std::int64_t interval_ = 1, max_checkpoints_ = 0;
  bool by_epoch_ = true, no_save_ = false, save_last_ = true, save_trainer_state_ = true;
  // Since the last optimizer step: whether an evaluation ran, and whether output/ was written.
  bool weights_evaluated_ = false, output_has_weights_ = false;
  bool drop_obsolete_on_start_ = false;  // resumed: the history may hold undeleted ones
  std::vector<std::string> history_;
};

// Python's f'{value}' for the metric in a file name: the shortest repr of a float.
std::string metric_text(double v) {
  std::string s = fmt::format("{}", v);
  if (s.find_first_of(".en") == std::string::npos) s += ".0";
  return s;
}

class BestCkptSaverHook final : public SavingHook {
 public:
  explicit BestCkptSaverHook(const nlohmann::json& options) {
    ComponentOptions o(options, "BestCkptSaverHook");
    metric_key_ = o.text("metric_key", "");
    MS_CHECK(!metric_key_.empty(), ErrorCode::kConfig,
             "BestCkptSaverHook needs metric_key (e.g. \"accuracy\")");
    save_best_ = o.flag("save_best", true);
    rule_ = o.text("rule", "max");
    MS_CHECK(rule_ == "max" || rule_ == "min", ErrorCode::kConfig,
             "BestCkptSaverHook: rule must be \"max\" or \"min\", got \"{}\"", rule_);
    save_file_name_ = plain_name(o, "BestCkptSaverHook", "save_file_name", "");
    // "best_model.pth" names the files best_model.pth and best_model_trainer_state.pth, as in
    // ModelScope (the prefix here is what goes before ".pth": it made best_model.pth.pth).
    if (ends_with(save_file_name_, ".pth")) save_file_name_.resize(save_file_name_.size() - 4);
    restore_best_ = o.flag("restore_best", false);
    max_checkpoints_ = std::max<std::int64_t>(1, o.integer("max_checkpoint_num", 1));
    save_trainer_state_ = o.flag("save_trainer_state", true);
    place_ = read_place(o, "BestCkptSaverHook", "output_best");
    // Saving follows the evaluation: these are accepted and ignored, as ModelScope does.
    (void)o.value("interval"), (void)o.value("save_strategy"), (void)o.value("by_epoch");
    refuse_push(o, "BestCkptSaverHook");
    o.check_all_read();
  }
  std::string type() const override { return "BestCkptSaverHook"; }
  int default_priority() const override { return priority::kLow; }

  void before_run(Trainer& t) override {
    resolve_and_check_place(t);
    MS_CHECK(!t.hooks().of_type("EvaluationHook").empty(), ErrorCode::kConfig,
             "{}: BestCkptSaverHook saves after evaluations, but no EvaluationHook is configured "
             "(add evaluation.period or an EvaluationHook to train.hooks)",
             t.config().source());
    t.check_metric_key(metric_key_, type());
    // Resumed: best checkpoints displaced just before the kill may still be on disk.
    delete_displaced(t.is_main());
  }
  void after_train_epoch(Trainer& t) override {
    if (t.last_eval_tag() == std::pair<std::string, std::int64_t>{"epoch", t.epoch()})
      maybe_save(t, fmt::format("best_epoch{}", t.epoch() + 1));
  }
  void after_train_iter(Trainer& t) override {
    if (t.last_eval_tag() == std::pair<std::string, std::int64_t>{"iter", t.iter()})
      maybe_save(t, fmt::format("best_iter{}", t.iter() + 1));
  }
  void after_run(Trainer& t) override {
    if (!restore_best_ || best_prefix_.empty()) return;
    // The other ranks write nothing after the run, and rank 0's file may not be on their disk.
    if (!t.is_main()) return;
    const std::filesystem::path file = model_file(place_.save_dir / best_prefix_);
    log::info("restoring the best checkpoint {}", file.string());
    t.load_model_state(tensor::load_checkpoint(file).as_state_dict(), file.string());
  }

  CheckpointValue state_dict() const override {
    CheckpointValue out = CheckpointValue::dict();
    out.set("best_metric", best_ ? CheckpointValue(*best_) : CheckpointValue());
    out.set("best_ckpt", best_prefix_);
    CheckpointValue history = CheckpointValue::list();
    for (const auto& [value, name] : history_)
      history.push_back(CheckpointValue::tuple({value, name}));
    out.set("history", std::move(history));
    CheckpointValue displaced = CheckpointValue::list();
    for (const std::string& name : displaced_) displaced.push_back(name);
    out.set("displaced", std::move(displaced));
    return out;
  }
  void load_state_dict(const CheckpointValue& state) override {
    const CheckpointValue& best = state.at("best_metric");
    best_ = best.is_none() ? std::nullopt : std::optional<double>(best.as_float());
    best_prefix_ = state.at("best_ckpt").as_string();
    history_.clear();
    if (const CheckpointValue* h = state.find("history"))
      for (const auto& item : h->items())
        history_.emplace_back(item.items().at(0).as_float(), item.items().at(1).as_string());
    displaced_.clear();
    if (const CheckpointValue* d = state.find("displaced"))
      for (const auto& item : d->items()) displaced_.push_back(item.as_string());
  }

 private:
  void maybe_save(Trainer& t, const std::string& stem) {
    if (!save_best_ || t.metric_values().is_null()) return;
    MS_CHECK(t.metric_values().contains(metric_key_), ErrorCode::kConfig,
             "BestCkptSaverHook: metric_key '{}' is not among the evaluation's metrics ({})",
             metric_key_, t.metric_values().dump());
    const double value = t.metric_values()[metric_key_].get<double>();
    if (!std::isfinite(value)) return;
    const bool better = !best_ || (rule_ == "max" ? value > *best_ : value < *best_);
    if (!better) return;
    best_ = value;
    const std::string name = save_file_name_.empty()
                                 ? fmt::format("{}_{}{}", stem, metric_key_, metric_text(value))
                                 : save_file_name_;
    best_prefix_ = name;
    history_.emplace_back(value, name);
    // Keep the best max_checkpoint_num by the rule (a fixed save_file_name is overwritten).
    std::stable_sort(history_.begin(), history_.end(), [&](const auto& a, const auto& b) {
      return rule_ == "max" ? a.first > b.first : a.first < b.first;
    });
    while (static_cast<std::int64_t>(history_.size()) > max_checkpoints_) {
      if (history_.back().second != name) displaced_.push_back(history_.back().second);
      history_.pop_back();
    }
    t.at_stage_end([this, &t, name, value] {
      if (t.is_main()) log::info("best {} so far ({}): saving {}", metric_key_, value, name);
      if (!save_checkpoint_files(t, place_.save_dir / name, save_trainer_state_)) return;
      // Saved right after the evaluation of these weights.
      replace_output(t, place_.output_dir, true);
    });
    // The best checkpoints it displaces go only once --resume would no longer restore a state
    // that still has them among the best; the state saved now lists them as displaced, so that a
    // run killed before they are deleted deletes them when resumed (or they would stay for good).
    t.after_stage_saves([this, &t] { delete_displaced(t.is_main()); });
  }

  // Deletes the displaced best checkpoints' files (rank 0, which wrote them), then forgets them.
  void delete_displaced(bool main) {
    if (main) {
      for (const std::string& old : displaced_) {
        log::info("deleting checkpoint {}", old);
        remove_checkpoint_files(place_.save_dir / old);
      }
    }
    displaced_.clear();
  }
  bool writes() const override { return save_best_; }
  std::optional<std::string> fixed_name() const override {
    return save_file_name_.empty() ? std::nullopt : std::optional<std::string>(save_file_name_);
  }
  bool may_name(const std::string& name) const override {
    if (!save_file_name_.empty()) return name == save_file_name_;
    // best_epoch{E}_{key}{value} / best_iter{I}_{key}{value}
    for (const std::string stem : {"best_epoch", "best_iter"}) {
      if (name.rfind(stem, 0) != 0) continue;
      std::size_t i = stem.size();
      const std::size_t digits = i;
      while (i < name.size() && std::isdigit(static_cast<unsigned char>(name[i]))) ++i;
      const std::string key = "_" + metric_key_;
      if (i > digits && name.compare(i, key.size(), key) == 0) return true;
    }
    return false;
  }
  std::string names() const override {
    return save_file_name_.empty() ? fmt::format("best_epoch<E>_{}<value>", metric_key_)
                                   : save_file_name_;
  }
  bool same_names(const SavingHook& other) const override {
    const auto* best = dynamic_cast<const BestCkptSaverHook*>(&other);
    return best != nullptr && save_file_name_.empty() && best->save_file_name_.empty() &&
           best->metric_key_ == metric_key_;
  }

  std::string metric_key_, rule_, save_file_name_, best_prefix_;
  bool save_best_ = true, restore_best_ = false, save_trainer_state_ = true;
  std::int64_t max_checkpoints_ = 1;
  std::optional<double> best_;
  std::vector<std::pair<double, std::string>> history_;
  // Best checkpoints displaced from history_ whose files are not deleted yet.
  std::vector<std::string> displaced_;
};

class LoadCheckpointHook final : public Hook {
 public:
  explicit LoadCheckpointHook(const nlohmann::json& options) {
    ComponentOptions o(options, "LoadCheckpointHook");
    file_ = o.text("checkpoint_file", "");
    MS_CHECK(!file_.empty(), ErrorCode::kConfig,
             "LoadCheckpointHook needs checkpoint_file (a <prefix>.pth or the prefix)");
    load_all_state_ = o.flag("load_all_state", true);
    (void)o.flag("strict", false);
    o.check_all_read();
  }
  std::string type() const override { return "LoadCheckpointHook"; }
  int default_priority() const override { return priority::kHigh; }

  void before_run(Trainer& t) override {
    const std::filesystem::path prefix = checkpoint_prefix(file_);
    const std::filesystem::path weights = model_file(prefix);
    MS_CHECK(std::filesystem::exists(weights), ErrorCode::kNotFound, "checkpoint {} does not exist",
             weights.string());
    log::info("loading checkpoint {}", weights.string());
    t.load_model_state(tensor::load_checkpoint(weights).as_state_dict(), weights.string());
    if (!load_all_state_) return;
    const std::filesystem::path state = trainer_state_file(prefix);
    MS_CHECK(std::filesystem::exists(state), ErrorCode::kNotFound,
             "{} has no trainer state ({} does not exist): it cannot be resumed from; "
             "load_all_state: false loads only the weights",
             weights.string(), state.string());
    t.load_trainer_state(tensor::load_checkpoint(state));
  }

 private:
  std::filesystem::path file_;
  bool load_all_state_ = true;
};

}  // namespace

void register_checkpoint_hooks(Registry<HookFactory>& r) {
  r.add(
      "CheckpointHook",
      [](const nlohmann::json& o) -> std::shared_ptr<Hook> {
        return std::make_shared<CheckpointHook>(o);
      },
      "saves epoch_N.pth / iter_N.pth and their trainer state every interval (by_epoch | "
      "save_strategy), save_last, max_checkpoint_num; rewrites output/");
  r.add(
      "BestCkptSaverHook",
      [](const nlohmann::json& o) -> std::shared_ptr<Hook> {
        return std::make_shared<BestCkptSaverHook>(o);
      },
      "saves after an evaluation that improves metric_key (rule max|min); output_best/, "
      "restore_best");
  r.add(
      "LoadCheckpointHook",
      [](const nlohmann::json& o) -> std::shared_ptr<Hook> {
        return std::make_shared<LoadCheckpointHook>(o);
      },
      "before the run: loads checkpoint_file's weights and (load_all_state) the trainer state");
}

}  // namespace ms::trainer
