// Unit tests of Registry<T> and Registries.
#include "ms/config/registry.h"

#include <functional>

#include "catch.h"
#include "ms/config/components.h"

TEST_CASE("registry stores components by group and type", "[registry]") {
  ms::Registry<int> r("models");
  r.add("bert", 1, "BERT encoder", "text-classification");
  r.add("bert", 2, "BERT encoder", "fill-mask");
  r.add("resnet", 3);
  CHECK(r.get("bert", "text-classification") == 1);
  CHECK(r.get("bert", "fill-mask") == 2);
  CHECK(r.get("resnet") == 3);
  CHECK(r.find("resnet", "fill-mask") == nullptr);  // lookups stay within the group
  CHECK(r.groups() == std::vector<std::string>{"default", "fill-mask", "text-classification"});
  CHECK(r.entries().size() == 3);
}

TEST_CASE("duplicate registration is an error", "[registry]") {
  ms::Registry<int> r("models");
  r.add("bert", 1);
  CHECK_THROWS_AS(r.add("bert", 2), ms::Error);
}

TEST_CASE("unknown types name the registry, group and close matches", "[registry]") {
  ms::Registry<int> r("pipelines");
  r.add("text-classification", 1, "", "nlp");
  r.add("token-classification", 2, "", "nlp");
  try {
    r.get("text-clasification", "nlp");
    FAIL("no throw");
  } catch (const ms::Error& e) {
    CHECK(e.code() == ms::ErrorCode::kNotFound);
    CHECK(std::string(e.what()).find("'text-clasification'") != std::string::npos);
    CHECK(std::string(e.what()).find("registry 'pipelines'") != std::string::npos);
    CHECK(std::string(e.what()).find("group 'nlp'") != std::string::npos);
    CHECK(e.hint().find("did you mean 'text-classification'") != std::string::npos);
  }
}

TEST_CASE("Registries lists and finds registries by name", "[registry]") {
  ms::Registries all;
  ms::register_config_components(all);
  CHECK(all.contains("config_formats"));
  CHECK(all.get("config_formats").entries().size() == 2);
  CHECK_THROWS_AS(all.get("config_format"), ms::Error);
  CHECK_THROWS_AS(ms::register_config_components(all), ms::Error);  // added twice
}

TEST_CASE("deferred registries load on first use only", "[registry]") {
  ms::Registry<int> late("models");
  late.add("bert", 1);
  int loads = 0;
  ms::Registries all;
  ms::register_config_components(all);
  all.add_deferred("models", [&]() -> const ms::RegistryBase& {
    ++loads;
    return late;
  });
  CHECK(all.names() == std::vector<std::string>{"config_formats", "models"});
  CHECK(all.contains("models"));
  CHECK(loads == 0);
  CHECK(all.get("models").entries().size() == 1);
  CHECK(loads == 1);
  CHECK_THROWS_AS(
      all.add_deferred("config_formats", [&]() -> const ms::RegistryBase& { return late; }),
      ms::Error);
  all.add_deferred("broken", []() -> const ms::RegistryBase& {
    throw ms::Error(ms::ErrorCode::kMissingComponent, "no torch layer");
  });
  try {
    all.get("broken");
    FAIL("no throw");
  } catch (const ms::Error& e) {
    CHECK(e.code() == ms::ErrorCode::kMissingComponent);
  }
}
