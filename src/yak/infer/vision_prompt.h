// Prompts with pictures for vision-language models, as Qwen-VL's processor builds them: each
// image becomes <vision_start> <image_pad> <vision_end> in the text (where an `<image>` marker
// stands, or before the text), the chat template renders the message, then every image's pad
// is repeated once per merged patch of its grid before the text is tokenized.
#pragma once
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "yak/infer/messages.h"
#include "yak/model/decoder.h"
#include "yak/model/vision.h"
#include "yak/tokenizer/tokenizer.h"

namespace yak::infer {


struct PromptImages {
  Tensor patches;                       // every image's patch rows, in order
  std::vector<model::PatchGrid> grids;  // one per image
};

// Reads and preprocesses image files (io::read_image + model::preprocess_image), or the images
// of parsed messages (files or data: URLs).
PromptImages load_prompt_images(std::span<const std::string> paths, const model::ImageProcessorConfig& cfg);
PromptImages load_prompt_images(const std::vector<ImageSource>& images, const model::ImageProcessorConfig& cfg);

// Every `<image>` marker of the messages replaced by its image's placeholder tokens (their text).
void place_images(std::vector<tok::ChatMessage>& messages, const tok::Tokenizer& tok, const io::VisionConfig& vision);

// `text` with each `<image>` marker replaced by the image's placeholder tokens (their text);
// without markers the n placeholders go first. A marker count other than n is an error.
std::string place_images(const std::string& text, size_t n, const tok::Tokenizer& tok, const io::VisionConfig& vision);

// Tokenizes a rendered prompt, repeating the i-th image pad once per merged patch of grids[i];
// the number of pads must equal the number of images.
std::vector<int32_t> encode_with_images(const std::string& text, std::span<const model::PatchGrid> grids,
                                        const tok::Tokenizer& tok, const io::VisionConfig& vision, bool add_special);

// The request's visual part for `prompt` (runs the vision tower).
std::shared_ptr<const model::VisualPrompt> visual_prompt(const model::DecoderModel& model,
                                                         std::span<const int32_t> prompt, const PromptImages& images);

}  // namespace yak::infer
