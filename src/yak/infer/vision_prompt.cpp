#include "yak/infer/vision_prompt.h"

#include <cstring>

#include "yak/base/error.h"

namespace yak::infer {
namespace {

std::string token_text(const tok::Tokenizer& tok, int64_t id, const char* what) {
  if (id < 0 || id >= tok.vocab_size() || !tok.is_special(static_cast<int32_t>(id)))
    throw Error(std::string("images: the tokenizer has no special token for the ") + what + " (id " +
                std::to_string(id) + " in config.json)");
  return tok.id_to_token(static_cast<int32_t>(id));
}

size_t count_of(const std::string& text, std::string_view what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

}  // namespace

PromptImages load_prompt_images(std::span<const std::string> paths, const model::ImageProcessorConfig& cfg) {
  std::vector<ImageSource> sources;
  for (const auto& p : paths) sources.push_back({p, {}, p});
  return load_prompt_images(sources, cfg);
}

PromptImages load_prompt_images(const std::vector<ImageSource>& images, const model::ImageProcessorConfig& cfg) {
  PromptImages out;
  std::vector<Tensor> parts;
  int64_t rows = 0, cols = 0;
  for (const auto& src : images) {
    model::PatchGrid g;
    const io::Image img = src.bytes.empty() ? io::read_image(src.path) : io::decode_image(src.bytes, src.where);
    parts.push_back(model::preprocess_image(img, cfg, &g));
    out.grids.push_back(g);
    rows += parts.back().dim(0);
    cols = parts.back().dim(1);
  }
  out.patches = Tensor::empty({rows, cols});
  int64_t at = 0;
  for (const auto& t : parts) {
    std::memcpy(out.patches.data<float>() + at * cols, t.data<float>(), static_cast<size_t>(t.numel()) * sizeof(float));
    at += t.dim(0);
  }
  return out;
}

std::string place_images(const std::string& text, size_t n, const tok::Tokenizer& tok, const io::VisionConfig& vision) {
  const std::string holder = token_text(tok, vision.vision_start_token_id, "vision start") +
                             token_text(tok, vision.image_token_id, "image pad") +
                             token_text(tok, vision.vision_end_token_id, "vision end");
  const size_t markers = count_of(text, kImageMarker);
  if (markers == 0) {
    std::string out;
    for (size_t i = 0; i < n; ++i) out += holder;
    return out + text;
  }
  if (markers != n)
    throw Error("the prompt has " + std::to_string(markers) + " " + std::string(kImageMarker) + " markers for " +
                std::to_string(n) + " images");
  std::string out;
  size_t from = 0;
  for (size_t at = text.find(kImageMarker); at != std::string::npos; at = text.find(kImageMarker, from)) {
    out += text.substr(from, at - from) + holder;
    from = at + kImageMarker.size();
  }
  return out + text.substr(from);
}

void place_images(std::vector<tok::ChatMessage>& messages, const tok::Tokenizer& tok, const io::VisionConfig& vision) {
  for (auto& m : messages) {
    const size_t n = count_of(m.content, kImageMarker);
    if (n) m.content = place_images(m.content, n, tok, vision);
  }
}

std::vector<int32_t> encode_with_images(const std::string& text, std::span<const model::PatchGrid> grids,
                                        const tok::Tokenizer& tok, const io::VisionConfig& vision, bool add_special) {
  const std::string pad = token_text(tok, vision.image_token_id, "image pad");
  const size_t pads = count_of(text, pad);
  if (pads != grids.size())
    throw Error("the rendered prompt holds " + std::to_string(pads) + " image placeholders for " +
                std::to_string(grids.size()) + " images");
  const int64_t merge = vision.spatial_merge_size * vision.spatial_merge_size;
  std::string expanded;
  size_t from = 0, i = 0;
  for (size_t at = text.find(pad); at != std::string::npos; at = text.find(pad, from), ++i) {
    expanded += text.substr(from, at - from);
    for (int64_t k = 0; k < grids[i].patches() / merge; ++k) expanded += pad;
    from = at + pad.size();
  }
  expanded += text.substr(from);
  return tok.encode(expanded, add_special);
}

std::shared_ptr<const model::VisualPrompt> visual_prompt(const model::DecoderModel& model,
                                                         std::span<const int32_t> prompt, const PromptImages& images) {
  if (!model.vision()) throw Error("images need a vision-language model (this checkpoint has no vision tower)");
  return std::make_shared<const model::VisualPrompt>(
      model::make_visual_prompt(*model.vision(), prompt, images.patches, images.grids));
}

}  // namespace yak::infer
