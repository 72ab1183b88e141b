// text-gen-metric: ROUGE-1, ROUGE-L, BLEU-1 and BLEU-4 of generated texts against their targets,
// as ModelScope's TextGenerationMetric reports them. ModelScope computes ROUGE with the `rouge`
// package (1.0.1) and BLEU with nltk's corpus_bleu; this file is written after what those do,
// step by step, so that the figures agree to the last bits (tests/unit/metrics_test.cpp compares
// them on fixed texts):
//
// - every text is first "rebuilt" (ModelScope's rebuild_chinese_str): each CJK ideograph and
//   Chinese punctuation mark becomes a word of its own, and white space is collapsed to single
//   spaces, so Chinese is scored character by character and other text word by word;
// - ROUGE skips pairs whose generated or target text holds nothing but spaces and dots, yet its
//   mean divides by every pair (ModelScope's quirk, kept); each text is cut into sentences at dots,
//   and ROUGE-1 and ROUGE-L count distinct words (the package's default `exclusive` sets);
// - BLEU is one corpus-level figure over every pair (skipped ones too), words split at single
//   spaces, with NIST geometric smoothing (SmoothingFunction().method3).
#include <algorithm>
#include <cmath>
#include <set>
#include <string_view>

#include "fields.h"
#include "ms/core/error.h"
#include "ms/core/utf8.h"

namespace ms::metrics {
namespace {

// --- ModelScope's text clean-up
// -------------------------------------------------------------------

// White space as Python's str.split() knows it (str.isspace: Unicode White_Space plus the
// information separators U+001C..U+001F), which the rebuilt text is split at.
bool python_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

// ModelScope's _is_chinese_char (BERT's CJK blocks; ms::text::is_cjk differs in one bound, so it
// is not reused here).
bool chinese_char(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// ModelScope's CHINESE_PUNCTUATION (chinese_utils.py), character for character.
bool chinese_punctuation(char32_t c) {
  static const std::u32string marks =
      U"＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～｟｠｢｣､\u3000、〃〈〉《》「」『』"
      U"【】〔〕〖〗〘〙〚〛〜〝〞〟〰〾〿–—‘’‛“”„‟…‧﹏﹑﹔·！？｡。";
  return marks.find(c) != std::u32string::npos;
}

// rebuild_chinese_str: spaces around every Chinese character and punctuation mark, then the
// words joined by single spaces (no white space at either end).
std::string rebuild_chinese_text(const std::string& text, const char* field) {
  std::u32string chars;
  try {
    chars = decode_utf8(text);
  } catch (const Error& e) {
    fail(ErrorCode::kIntegrity, "text-gen-metric: a text of '{}' is not UTF-8 ({})", field,
         e.what());
  }
  std::string out, word;
  auto end_word = [&] {
    if (word.empty()) return;
    if (!out.empty()) out += ' ';
    out += word;
    word.clear();
  };
  for (char32_t c : chars) {
    if (python_space(c)) {
      end_word();
    } else if (chinese_char(c) || chinese_punctuation(c)) {
      end_word();
      append_utf8(word, c);
      end_word();
    } else {
      append_utf8(word, c);
    }
  }
  end_word();
  return out;
}

// Python's text.split(sep): every piece between separators, empty ones included.
std::vector<std::string> split_at(std::string_view text, char sep) {
  std::vector<std::string> pieces;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == sep) {
      pieces.emplace_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  return pieces;
}

// ModelScope's _check: a pair takes part in ROUGE when both texts hold more than spaces and dots.
bool has_content(const std::string& text) {
  return std::any_of(text.begin(), text.end(), [](char c) { return c != ' ' && c != '.'; });
}

// --- ROUGE (the `rouge` package, 1.0.1) ----------------------------------------------------------

// Rouge._get_scores' sentences: the text cut at dots, empty pieces dropped, and each piece's white
// space collapsed. A rebuilt text has single spaces only, so collapsing means trimming the ends.
std::vector<std::string> rouge_sentences(const std::string& text) {
  std::vector<std::string> sentences;
  for (const std::string& piece : split_at(text, '.')) {
    if (piece.empty()) continue;
    const std::size_t first = piece.find_first_not_of(' ');
    sentences.push_back(first == std::string::npos
                            ? std::string()
                            : piece.substr(first, piece.find_last_not_of(' ') - first + 1));
  }
  return sentences;
}

// The package's words of a sentence: split at single spaces (an empty sentence is one empty word).
using Words = std::vector<std::string>;

std::set<std::string> distinct_words(const std::vector<std::string>& sentences) {
  std::set<std::string> words;
  for (const std::string& s : sentences)
    for (std::string& w : split_at(s, ' ')) words.insert(std::move(w));
  return words;
}

// f_r_p_rouge_n's F score, with its 1e-8 in the denominator and its zero for an empty side.
double rouge_f(double overlap, double evaluated, double reference) {
  const double precision = evaluated == 0 ? 0.0 : overlap / evaluated;
  const double recall = reference == 0 ? 0.0 : overlap / reference;
  return 2.0 * ((precision * recall) / (precision + recall + 1e-8));
}

// The words of one longest common subsequence of `x` (a reference sentence) and `y` (a generated
// one), walked back through the table as the package's _recon_lcs does: up when the cell above is
// strictly longer, else left. Which subsequence it finds matters: ROUGE-L counts its words.
void add_lcs_words(const Words& x, const Words& y, std::set<std::string>& into) {
  const std::size_t n = x.size(), m = y.size();
  std::vector<std::vector<std::uint32_t>> table(n + 1, std::vector<std::uint32_t>(m + 1, 0));
  for (std::size_t i = 1; i <= n; ++i)
    for (std::size_t j = 1; j <= m; ++j)
      table[i][j] = x[i - 1] == y[j - 1] ? table[i - 1][j - 1] + 1
                                         : std::max(table[i - 1][j], table[i][j - 1]);
  for (std::size_t i = n, j = m; i > 0 && j > 0;) {
    if (x[i - 1] == y[j - 1]) {
      into.insert(x[i - 1]);
      --i;
      --j;
    } else if (table[i - 1][j] > table[i][j - 1]) {
      --i;
    } else {
      --j;
    }
  }
}

struct RougeF {
  double rouge_1, rouge_l;
};

// rouge-1 (rouge_n, n = 1) and rouge-l (rouge_l_summary_level) F scores of one pair.
RougeF rouge_scores(const std::string& generated, const std::string& target) {
  const std::vector<std::string> hyp = rouge_sentences(generated), ref = rouge_sentences(target);
  const std::set<std::string> hyp_words = distinct_words(hyp), ref_words = distinct_words(ref);
  std::size_t overlap = 0;
  for (const std::string& w : hyp_words) overlap += ref_words.count(w);
  RougeF out{};
  out.rouge_1 = rouge_f(double(overlap), double(hyp_words.size()), double(ref_words.size()));
  // Summary-level LCS: the union over every (reference, generated) sentence pair of their common
  // subsequence's words, counted as distinct words.
  std::set<std::string> lcs_union;
  for (const std::string& r : ref) {
    const Words ref_sentence = split_at(r, ' ');
    for (const std::string& h : hyp) add_lcs_words(ref_sentence, split_at(h, ' '), lcs_union);
  }
  const double llcs = double(lcs_union.size());
  const double r_lcs = llcs / double(ref_words.size()), p_lcs = llcs / double(hyp_words.size());
  out.rouge_l = 2.0 * ((p_lcs * r_lcs) / (p_lcs + r_lcs + 1e-8));
  return out;
}

// --- BLEU (nltk.translate.bleu_score.corpus_bleu) ------------------------------------------------

// math.fsum: the correctly rounded sum (Shewchuk's exact partials, then CPython's rounding of
// them), which corpus_bleu takes of the weighted log precisions.
double exact_sum(const std::vector<double>& values) {
  std::vector<double> partials;
  for (double x : values) {
    std::size_t i = 0;
    for (double y : partials) {
      if (std::fabs(x) < std::fabs(y)) std::swap(x, y);
      const double hi = x + y, lo = y - (hi - x);
      if (lo != 0.0) partials[i++] = lo;
      x = hi;
    }
    partials.resize(i);
    partials.push_back(x);
  }
  if (partials.empty()) return 0.0;
  std::size_t n = partials.size();
  double hi = partials[--n], lo = 0;
  while (n > 0) {
    const double x = hi, y = partials[--n];
    hi = x + y;
    lo = y - (hi - x);
    if (lo != 0.0) break;
  }
  // Half-way cases: round as if the partials below were there (CPython's correction).
  if (n > 0 && ((lo < 0 && partials[n - 1] < 0) || (lo > 0 && partials[n - 1] > 0))) {
    const double y = lo * 2, x = hi + y;
    if (y == x - hi) hi = x;
  }
  return hi;
}

using Counts = std::map<std::vector<std::string>, std::size_t>;

Counts ngram_counts(const Words& words, std::size_t n) {
  Counts counts;
  for (std::size_t i = 0; i + n <= words.size(); ++i)
    ++counts[Words(words.begin() + std::ptrdiff_t(i), words.begin() + std::ptrdiff_t(i + n))];
  return counts;
}

// corpus_bleu with one reference per text and SmoothingFunction().method3, for the weights of
// orders 1 to 4 (ModelScope's BLEU-1: 1, 0, 0, 0; BLEU-4: nltk's default of a quarter each).
double corpus_bleu(const std::vector<Words>& generated, const std::vector<Words>& targets,
                   const std::vector<double>& weights) {
  constexpr std::size_t kOrders = 4;
  std::vector<std::uint64_t> matched(kOrders + 1, 0), total(kOrders + 1, 0);
  std::uint64_t hyp_length = 0, ref_length = 0;
  for (std::size_t k = 0; k < generated.size(); ++k) {
    for (std::size_t n = 1; n <= kOrders; ++n) {
      // modified_precision: each n-gram counted at most as often as the reference holds it; the
      // denominator is at least 1 per text, even one shorter than n.
      const Counts hyp = ngram_counts(generated[k], n), ref = ngram_counts(targets[k], n);
      std::uint64_t clipped = 0, count = 0;
      for (const auto& [gram, c] : hyp) {
        const auto it = ref.find(gram);
        clipped += std::min(c, it == ref.end() ? 0 : it->second);
        count += c;
      }
      matched[n] += clipped;
      total[n] += std::max<std::uint64_t>(1, count);
    }
    hyp_length += generated[k].size();
    ref_length += targets[k].size();
  }
  if (matched[1] == 0) return 0.0;
  const double brevity = hyp_length > ref_length ? 1.0
                         : hyp_length == 0
                             ? 0.0
                             : std::exp(1.0 - double(ref_length) / double(hyp_length));
  // method3: the k-th order without a match counts as 1 / (2^k * its n-grams).
  std::vector<double> terms;
  std::uint64_t missing = 1;
  for (std::size_t n = 1; n <= kOrders; ++n) {
    double precision;
    if (matched[n] == 0) {
      precision = 1.0 / double((std::uint64_t(1) << missing) * total[n]);
      ++missing;
    } else {
      precision = double(matched[n]) / double(total[n]);
    }
    terms.push_back(weights[n - 1] * std::log(precision));
  }
  return brevity * std::exp(exact_sum(terms));
}

// --- the metric ----------------------------------------------------------------------------------

// The texts of a field: kConfig when it holds numbers instead (a model output, not generated text).
const std::vector<std::string>& texts_of(const Fields& fields, const std::string& name,
                                         const char* side, const char* option) {
  const Array& a = field(fields, name, side, option);
  MS_CHECK(!(a.texts.empty() && !a.values.empty()), ErrorCode::kConfig,
           "text-gen-metric: the {} field '{}' holds numbers, not texts (set \"{}\")", side, name,
           option);
  return a.texts;
}

class TextGenerationMetric : public Metric {
 public:
  explicit TextGenerationMetric(const nlohmann::json& options) {
    ComponentOptions o(options, type());
    target_text_ = o.text("target_text", "tgts");
    pred_text_ = o.text("pred_text", "preds");
    o.check_all_read();
  }
  std::string type() const override { return kTextGenMetric; }

  void add(const Fields& outputs, const Fields& inputs) override {
    const auto& generated = texts_of(outputs, pred_text_, "outputs", "pred_text");
    const auto& targets = texts_of(inputs, target_text_, "inputs", "target_text");
    // ModelScope's trainer asserts as much: pairs out of step would score against other targets.
    if (generated.size() != targets.size())
      fail(ErrorCode::kConfig, "text-gen-metric: {} generated texts ('{}') for {} targets ('{}')",
           generated.size(), pred_text_, targets.size(), target_text_);
    for (const std::string& t : generated) preds_.push_back(rebuild_chinese_text(t, "preds"));
    for (const std::string& t : targets) tgts_.push_back(rebuild_chinese_text(t, "tgts"));
  }

  MetricValues evaluate() const override {
    if (preds_.empty()) nothing_added(type());
    // ROUGE over the pairs with content, summed in order and divided by every pair. ModelScope
    // fails when no pair has content (it unpacks an empty list); ms reports 0, the limit of its
    // mean, so that an evaluation of a model that writes nothing yet still ends.
    double rouge_1 = 0, rouge_l = 0;
    for (std::size_t i = 0; i < preds_.size(); ++i) {
      if (!has_content(preds_[i]) || !has_content(tgts_[i])) continue;
      const RougeF f = rouge_scores(preds_[i], tgts_[i]);
      rouge_1 += f.rouge_1;
      rouge_l += f.rouge_l;
    }
    const double pairs = double(preds_.size());
    // BLEU over every pair: the rebuilt texts' words at single spaces (they have no white space
    // at the ends, which ModelScope strips first).
    std::vector<Words> generated, targets;
    for (std::size_t i = 0; i < preds_.size(); ++i) {
      generated.push_back(split_at(preds_[i], ' '));
      targets.push_back(split_at(tgts_[i], ' '));
    }
    return {{"rouge-1", rouge_1 / pairs},
            {"rouge-l", rouge_l / pairs},
            {"bleu-1", corpus_bleu(generated, targets, {1, 0, 0, 0})},
            {"bleu-4", corpus_bleu(generated, targets, {0.25, 0.25, 0.25, 0.25})}};
  }
  std::vector<std::string> keys() const override {
    return {"rouge-1", "rouge-l", "bleu-1", "bleu-4"};
  }

  // The rebuilt texts, as ModelScope pickles the metric (its preds and tgts).
  nlohmann::json collected() const override { return {{"preds", preds_}, {"tgts", tgts_}}; }
  void take_in(const nlohmann::json& collected) override {
    auto preds = collected.at("preds").get<std::vector<std::string>>();
    auto tgts = collected.at("tgts").get<std::vector<std::string>>();
    if (preds.size() != tgts.size())
      fail(ErrorCode::kIntegrity,
           "text-gen-metric: a state to take in holds {} texts for {} targets", preds.size(),
           tgts.size());
    preds_.insert(preds_.end(), preds.begin(), preds.end());
    tgts_.insert(tgts_.end(), tgts.begin(), tgts.end());
  }

 private:
  std::string target_text_, pred_text_;
  std::vector<std::string> preds_, tgts_;  // rebuilt, pair by pair
};

}  // namespace

std::unique_ptr<Metric> make_text_generation(const nlohmann::json& options) {
  return std::make_unique<TextGenerationMetric>(options);
}

}  // namespace ms::metrics
