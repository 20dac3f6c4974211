// JSON Schema -> GBNF, for response_format {"type":"json_schema"} and `yak generate --json-schema`.
//
// Supported: type (string, number, integer, boolean, null, object, array, and lists of them),
// properties / required (properties come in the order the schema lists them; required ones are
// always written, optional ones may be left out), additionalProperties (false or absent: no
// other keys; true or a schema: further keys after the listed ones), items, prefixItems,
// minItems / maxItems, minLength / maxLength, enum, const, anyOf / oneOf, allOf of one schema,
// $ref to #/$defs/... or #/definitions/... (recursion allowed), integer minimum >= 0.
// Annotations (title, description, default, examples, format, $schema, $id, $comment...) are
// ignored. Any other keyword would make the output fail validation in ways the grammar cannot
// prevent, so it is refused with a yak::Error naming it and where it is (e.g. "schema.properties.
// age: 'maximum' is not supported"), never silently dropped.
#pragma once
#include <string>

#include "yak/base/json.h"

namespace yak::infer {

// GBNF whose root matches exactly the JSON texts the schema accepts (compact or with single
// spaces/newlines between tokens, at most 20 spaces of indentation).
// Properties keep the schema's order, so the schema is an ordered_json (or text).
std::string json_schema_to_gbnf(const nlohmann::ordered_json& schema);
// Parses the schema from text first; `where` names it when that fails.
std::string json_schema_to_gbnf(const std::string& schema_text, const std::string& where);

// Any JSON object (response_format {"type":"json_object"}).
std::string json_object_gbnf();

// A GBNF string literal for `text` ("..." with escapes).
std::string gbnf_literal(const std::string& text);

}  // namespace yak::infer
