// PyTorch checkpoints written by torch.save (pytorch_model.bin, adapter_model.bin,
// pytorch_model-0000k-of-0000n.bin): the zip archive of PyTorch >= 1.6, read without Python.
//
// data.pkl is run on a restricted pickle machine that knows only what a state dict is made
// of: containers (dict/OrderedDict, list, tuple), numbers, strings, storages named by
// persistent ids, and the tensor-rebuilding functions of torch._utils. Any other global
// (os.system, builtins.eval, a class of the writer's program...) is refused before anything
// else happens, so a malicious file can never run code; it only gets a yak::Error naming it.
// Tensors are views of the mapped file where they lie contiguous and aligned, else copies.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "yak/tensor/tensor.h"

namespace yak::io {

// The state dict of a torch.save file: name -> tensor. A file whose top-level dict holds only
// tensors is read as it is; otherwise a "state_dict", "model" or "module" entry holding a dict
// of tensors is taken. Throws yak::Error naming the file and what is wrong.
std::map<std::string, Tensor> read_torch_file(const std::filesystem::path& path);

// The same over a buffer; views of it keep `holder` alive (the fuzzer passes null).
std::map<std::string, Tensor> read_torch_buffer(const uint8_t* data, size_t size, std::shared_ptr<const void> holder,
                                                const std::string& where);

}  // namespace yak::io
