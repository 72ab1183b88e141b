// torch.save / torch.load files without Python: a tree of plain values and tensors (what the
// trainer keeps in `<prefix>.pth` and `<prefix>_trainer_state.pth`), written in PyTorch's zip
// format so that Python's torch.load (1.13 and 2.x, weights_only too) reads it, and read back by
// ms.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "ms/tensor/weights.h"

namespace ms::tensor {

/// One value of a checkpoint: None, bool, int, float, str, tensor, list, tuple, or a dict whose
/// keys are str or int, kept in insertion order (Python's dict and OrderedDict alike).
class CheckpointValue {
 public:
  enum class Kind { kNone, kBool, kInt, kFloat, kString, kTensor, kList, kTuple, kDict };
  using Items = std::vector<CheckpointValue>;
  using Entries = std::vector<std::pair<CheckpointValue, CheckpointValue>>;

  CheckpointValue() = default;
  CheckpointValue(bool b) : kind_(Kind::kBool), int_(b ? 1 : 0) {}
  CheckpointValue(int v) : kind_(Kind::kInt), int_(v) {}
  CheckpointValue(std::int64_t v) : kind_(Kind::kInt), int_(v) {}
  CheckpointValue(std::uint64_t v) : kind_(Kind::kInt), int_(static_cast<std::int64_t>(v)) {}
  CheckpointValue(double v) : kind_(Kind::kFloat), float_(v) {}
  CheckpointValue(const char* s) : kind_(Kind::kString), text_(s) {}
  CheckpointValue(std::string s) : kind_(Kind::kString), text_(std::move(s)) {}
  CheckpointValue(at::Tensor t) : kind_(Kind::kTensor), tensor_(std::move(t)) {}

  static CheckpointValue list(Items items = {});
  static CheckpointValue tuple(Items items = {});
  static CheckpointValue dict(Entries entries = {});
  /// A dict saved as a collections.OrderedDict (what Python's state_dict() methods return).
  static CheckpointValue ordered_dict(Entries entries = {});
  /// A dict of tensors by name (a model's state dict), in name order, saved as an OrderedDict.
  static CheckpointValue state_dict(const TensorMap& tensors);

  Kind kind() const { return kind_; }
  bool is_none() const { return kind_ == Kind::kNone; }
  /// A dict that is saved, or was loaded, as a collections.OrderedDict; equality ignores it.
  bool is_ordered_dict() const { return ordered_; }

  /// Typed access; a different kind is ms::Error(kIntegrity) naming what was expected and found
  /// (checkpoints come from files: a wrong shape of data is the file's fault).
  bool as_bool() const;
  std::int64_t as_int() const;
  double as_float() const;  ///< an int is taken as a float too
  const std::string& as_string() const;
  const at::Tensor& as_tensor() const;
  const Items& items() const;      ///< list or tuple
  const Entries& entries() const;  ///< dict
  /// The tensors of a dict of str -> tensor (a state dict).
  TensorMap as_state_dict() const;

  /// Appends to a list or tuple.
  void push_back(CheckpointValue value);
  /// Sets `key` of a dict (replacing an existing entry with an equal key in place).
  void set(CheckpointValue key, CheckpointValue value);
  /// The value of a str key (or nullptr); `at()` throws ms::Error(kIntegrity) naming the key.
  const CheckpointValue* find(const std::string& key) const;
  const CheckpointValue* find(std::int64_t key) const;
  const CheckpointValue& at(const std::string& key) const;

  /// Equal kind and content; floats and tensors bitwise (tensors in dtype, shape and every
  /// element).
  friend bool operator==(const CheckpointValue& a, const CheckpointValue& b);

 private:
  Kind kind_ = Kind::kNone;
  std::int64_t int_ = 0;
  double float_ = 0;
  std::string text_;
  at::Tensor tensor_;
  Items items_;
  Entries entries_;
  bool ordered_ = false;
};

/// Writes `value` as torch.save(value) would (zip format, pickle protocol 2 data.pkl, one record
/// per tensor storage, tensors saved from the CPU, contiguous), atomically: a temp file in the same
/// folder, fsync, rename. A failed write (disk full) leaves an existing file at `path` untouched
/// and throws ms::Error(kIo) naming the path.
void save_checkpoint(const std::filesystem::path& path, const CheckpointValue& value);

/// Reads a file torch.save wrote (zip or legacy format) whose content is made of the values
/// above: dicts and OrderedDicts, lists, tuples, numbers, strings, None and tensors (and
/// torch.nn.Parameter). Throws ms::Error(kNotFound) for a missing file and ms::Error(kIntegrity)
/// naming the file for a truncated or malformed one or an object of any other class.
CheckpointValue load_checkpoint(const std::filesystem::path& path);

}  // namespace ms::tensor
