"""Knowledge base of the `semantic` dataset: hierarchy, properties, relations.

The world is written below in English, as data: about 110 real-world
categories of animals and objects in a tree (each with its own properties,
which hold for all its descendants) and relations between leaf categories.
`build_world(seed, tokenizer)` relexicalizes every content word (category
names, property adjectives/nouns/verbs, relation verbs) into nonsense, one
consistent mapping per seed, so a model cannot use its world knowledge.

A `World` speaks only nonsense lemmas. Facts have string ids
(`isa:dog:isa:canine`, `prop:dog:can:bark`, `rel:wolf:eat:sheep`, with
nonsense words) that `World.from_facts` turns back into a world, so checkers
and the oracle augmenter can rebuild what the training documents teach.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Iterable

from ftgen.data import rng
from ftgen.data import vocab

NAME = "semantic"
PROPERTY_KINDS = ("are", "have", "can")

# Indentation (two spaces) gives the tree; after the colon, own properties
# as "KIND WORD" with KIND in PROPERTY_KINDS. Every property word is unique.
HIERARCHY = """
animal: are alive; can breathe; have cells; can grow; are mortal
  mammal: have fur; are warmblooded; can nurse; have lungs; have whiskers
    primate: have thumbs; are clever; can climb; have fingernails
      monkey: have tails; are playful; can chatter
      gorilla: are strong; have crests; are gentle
      lemur: are nocturnal; can leap
    rodent: have incisors; can gnaw; are small; can burrow
      mouse: are timid; can squeak
      rat: can scavenge; are grey
      squirrel: have tufts; can hoard
      beaver: have paddles; can build
    feline: have claws; can purr; are agile; can pounce
      cat: are curious; can meow; are independent
      lion: have manes; can roar
      tiger: have stripes; are solitary
      leopard: have spots; are stealthy
    canine: have snouts; can howl; are loyal; can sniff
      dog: can bark; are friendly; can fetch
      wolf: are wild; have packs
      fox: are cunning; have brushes
    ungulate: have hooves; can graze; are herbivorous
      horse: can gallop; are fast
      cow: have udders; can moo
      deer: have antlers; are shy
      goat: have beards; are stubborn
      sheep: have wool; can bleat
    seamammal: have blubber; can dive; are aquatic
      whale: are enormous; can sing
      dolphin: can echolocate; are social
      seal: have flippers; are sleek
  bird: have feathers; have beaks; can nest; have wings; are oviparous
    songbird: can chirp; are tiny; can perch
      sparrow: are brown; are common
      robin: are orange; are cheerful
    raptor: have talons; can soar; are fierce; have eyesight
      eagle: are majestic; have wingspans
      hawk: are swift; can swoop
      owl: can hoot; are wise
    waterbird: have webbing; can paddle; are waterproof
      duck: can quack; have bills
      goose: can honk; are aggressive
      swan: are graceful; are white
  fish: have gills; have fins; can swim; are slippery; can spawn
    salmon: can migrate; are pink
    trout: are speckled; are freshwater
    shark: have cartilage; are predatory
    tuna: are speedy; are silver
  reptile: have scales; are coldblooded; can bask; are dry
    snake: are legless; can slither; can shed
    lizard: can regrow; are quick
    turtle: have shells; are slow
    crocodile: have jaws; can ambush
  amphibian: are slimy; can croak; are moist
    frog: can hop; are green
    toad: have warts; are bumpy
    salamander: can regenerate; are spotted
  insect: have antennae; have exoskeletons; are sixlegged; can crawl
    ant: are industrious; have colonies
    bee: can sting; can pollinate
    butterfly: are colorful; can flutter
    beetle: are armored; can scuttle
object: are inanimate; are manufactured; can break; are solid
  tool: are useful; have handles; are durable; are reliable
    handtool: are portable; are manual; are lightweight
      hammer: have heads; can pound
      saw: have teeth; are jagged
      screwdriver: have tips; can twist
      wrench: are adjustable; can grip
      pliers: can pinch; have hinges
    gardentool: are outdoor; are rustproof; have shafts
      shovel: have blades; can dig
      rake: have tines; can gather
      hoe: are long; can weed
  furniture: are indoor; have legs; are wooden; are bulky
    chair: have backrests; are comfy
    table: are flat; have surfaces
    bed: have mattresses; are soft
    sofa: have cushions; are cozy
    desk: have drawers; are tidy
  vehicle: can transport; have seats; are mobile; have brakes
    landvehicle: have wheels; can roll; have tires
      car: have trunks; are shiny
      truck: have trailers; are noisy
      bicycle: have pedals; have chains
      train: have carriages; are punctual
    watercraft: can float; have hulls; have rudders
      boat: have oars; are tippy
      ship: have anchors; are massive
      canoe: are narrow; are nimble
    aircraft: can fly; have cockpits; can land
      plane: have jets; are streamlined
      helicopter: have rotors; can hover
      balloon: are inflatable; have burners
  container: are hollow; have lids; can store
    box: are square; are cardboard
    bottle: have necks; have caps
    basket: are woven; are rustic
    bag: have straps; are foldable
  instrument: are musical; can resonate; are tuned; have cases
    stringinstrument: have strings; can strum; have pegs
      guitar: have frets; are acoustic
      violin: have bows; are delicate
    percussion: can boom; are rhythmic; have mallets
      drum: have skins; are round
      xylophone: have bars; are bright
  clothing: are wearable; are fabric; can stretch; have seams
    shirt: have buttons; have collars
    hat: have brims; are stylish
    shoe: have soles; have laces
    coat: are thick; have hoods
  utensil: are washable; are metal; are hygienic; have rims
    pot: are deep; can boil
    pan: are shallow; can fry
    spoon: are curved; can stir
    fork: have prongs; can spear
"""

# "VERB: SUBJECT OBJECT; ..." between leaf categories. Relations are not
# inherited (they hold between exactly the named categories). Each verb has
# enough distinct subjects and objects for hard distractors.
RELATIONS = """
eat: wolf sheep; fox mouse; lion deer; tiger goat; leopard monkey; owl mouse;
  eagle salmon; shark tuna; seal salmon; snake frog; crocodile deer;
  lizard ant; frog beetle; dolphin trout
hunt: wolf deer; cat mouse; hawk squirrel; owl rat; shark seal; tiger deer;
  leopard goat; crocodile duck
fear: mouse cat; sheep wolf; deer tiger; sparrow hawk; tuna shark; frog snake;
  goat leopard; duck fox; squirrel hawk; rat owl
chase: dog cat; cat squirrel; fox goose; wolf horse; dolphin salmon;
  goose dog; hawk sparrow; seal trout
carry: truck box; ship car; train truck; bicycle bag; boat basket; car bottle;
  plane guitar
hold: box shoe; bag shirt; basket bottle; pot spoon; table pan; desk drum
fix: wrench bicycle; wrench car; screwdriver chair; hammer desk; pliers guitar;
  screwdriver drum
"""


# ---------------------------------------------------------------- morphology


def plural(word: str) -> str:
  if word.endswith(("s", "x", "z", "ch", "sh")):
    return word + "es"
  if word.endswith("y") and word[-2:-1] not in "aeiou":
    return word[:-1] + "ies"
  return word + "s"


def past(word: str) -> str:
  """Past participle of a nonsense verb ("are glimmed by")."""
  if word.endswith("e"):
    return word + "d"
  if word.endswith("y") and word[-2:-1] not in "aeiou":
    return word[:-1] + "ied"
  return word + "ed"


def article(word: str) -> str:
  return "an" if word[:1] in "aeiou" else "a"


def forms(word: str) -> tuple[str, ...]:
  """Every surface form a lemma takes in the dataset."""
  return (word, plural(word), past(word))


# ---------------------------------------------------------------- facts


@dataclasses.dataclass(frozen=True)
class Fact:
  """One atomic fact. kind: "isa" (subject's parent is value), "prop"
  (relation in PROPERTY_KINDS), or "rel" (relation is a verb)."""

  kind: str
  subject: str
  relation: str
  value: str

  @property
  def id(self) -> str:
    return f"{self.kind}:{self.subject}:{self.relation}:{self.value}"

  @classmethod
  def from_id(cls, fact_id: str) -> "Fact":
    parts = fact_id.split(":")
    if len(parts) != 4 or parts[0] not in ("isa", "prop", "rel"):
      raise ValueError(
          f"bad semantic fact id {fact_id!r}; expected KIND:SUBJECT:RELATION:"
          "VALUE with KIND in isa, prop, rel")
    return cls(*parts)


def isa(child: str, parent: str) -> Fact:
  return Fact("isa", child, "isa", parent)


def prop(category: str, kind: str, word: str) -> Fact:
  return Fact("prop", category, kind, word)


def rel(subject: str, verb: str, obj: str) -> Fact:
  return Fact("rel", subject, verb, obj)


class World:
  """A category tree with properties and relations (any vocabulary)."""

  def __init__(self, parent: dict[str, str | None],
               props: dict[str, list[tuple[str, str]]],
               rels: list[tuple[str, str, str]]):
    self.parent = dict(parent)
    self.categories = list(self.parent)
    self.props = {c: list(props.get(c, ())) for c in self.categories}
    self.rels = list(rels)
    self.children: dict[str, list[str]] = {c: [] for c in self.categories}
    for c, p in self.parent.items():
      if p is not None:
        self.children[p].append(c)
    self.verbs = list(dict.fromkeys(v for _, v, _ in self.rels))
    self.owner: dict[tuple[str, str], list[str]] = {}
    for c in self.categories:
      for kp in self.props[c]:
        self.owner.setdefault(kp, []).append(c)
    self._rel_set = set(self.rels)
    self._ancestors: dict[str, tuple[str, ...]] = {}
    for c in self.categories:
      chain, p = [], self.parent[c]
      while p is not None:
        chain.append(p)
        p = self.parent[p]
      self._ancestors[c] = tuple(chain)
    self._descendants: dict[str, frozenset[str]] = {
        c: frozenset(d for d in self.categories if c in self._ancestors[d])
        for c in self.categories}

  @classmethod
  def from_facts(cls, facts: Iterable[Fact]) -> "World":
    """The world the facts describe; categories in first-seen order."""
    parent: dict[str, str | None] = {}
    props: dict[str, list[tuple[str, str]]] = {}
    rels: list[tuple[str, str, str]] = []

    def see(c):
      parent.setdefault(c, None)

    for f in facts:
      if f.kind == "isa":
        see(f.value)
        parent[f.subject] = f.value
      elif f.kind == "prop":
        see(f.subject)
        if (f.relation, f.value) not in props.setdefault(f.subject, []):
          props[f.subject].append((f.relation, f.value))
      else:
        see(f.subject)
        see(f.value)
        if (f.subject, f.relation, f.value) not in rels:
          rels.append((f.subject, f.relation, f.value))
    return cls(parent, props, rels)

  # Structure.

  def ancestors(self, c: str) -> tuple[str, ...]:
    """Strict ancestors, nearest first."""
    return self._ancestors[c]

  def depth(self, c: str) -> int:
    return len(self.ancestors(c))

  def descendants(self, c: str) -> frozenset[str]:
    return self._descendants[c]

  def is_leaf(self, c: str) -> bool:
    return not self.children[c]

  def distance(self, a: str, b: str) -> int:
    """Number of tree edges between two categories (large across roots)."""
    pa = (a,) + self.ancestors(a)
    pb = (b,) + self.ancestors(b)
    for i, x in enumerate(pa):
      if x in pb:
        return i + pb.index(x)
    return len(pa) + len(pb) + 1

  # Truth.

  def holds_prop(self, c: str, kind: str, word: str) -> bool:
    """Own or inherited property."""
    return any((kind, word) in self.props[x] for x in (c,) + self.ancestors(c))

  def inherited(self, c: str) -> list[tuple[str, tuple[str, str]]]:
    """(owner, (kind, word)) for every property c inherits, nearest first."""
    return [(a, kp) for a in self.ancestors(c) for kp in self.props[a]]

  def holds_rel(self, x: str, verb: str, y: str) -> bool:
    return (x, verb, y) in self._rel_set

  def facts(self) -> list[Fact]:
    out = []
    for c in self.categories:
      if self.parent[c] is not None:
        out.append(isa(c, self.parent[c]))
      out += [prop(c, k, w) for k, w in self.props[c]]
    out += [rel(x, v, y) for x, v, y in self.rels]
    return out

  def without(self, drop: Iterable[Fact]) -> "World":
    """The world without the facts in `drop` (the tree is kept)."""
    drop = set(drop)
    props = {c: [kp for kp in self.props[c] if prop(c, *kp) not in drop]
             for c in self.categories}
    rels = [r for r in self.rels if rel(*r) not in drop]
    return World(self.parent, props, rels)


# ---------------------------------------------------------------- parsing


def parse_hierarchy(text: str = HIERARCHY
                    ) -> tuple[dict[str, str | None],
                               dict[str, list[tuple[str, str]]]]:
  parent: dict[str, str | None] = {}
  props: dict[str, list[tuple[str, str]]] = {}
  stack: list[str] = []
  for line_no, line in enumerate(text.splitlines(), 1):
    if not line.strip():
      continue
    indent = len(line) - len(line.lstrip(" "))
    level = indent // 2
    name, _, rest = line.strip().partition(":")
    if indent % 2 or level > len(stack) or name in parent:
      raise ValueError(f"semantic hierarchy line {line_no}: bad entry {line!r}")
    stack[level:] = [name]
    parent[name] = stack[level - 1] if level else None
    props[name] = []
    for item in filter(None, (p.strip() for p in rest.split(";"))):
      kind, _, word = item.partition(" ")
      if kind not in PROPERTY_KINDS or not word.isalpha():
        raise ValueError(
            f"semantic hierarchy line {line_no}: bad property {item!r};"
            f" expected KIND WORD with KIND in {', '.join(PROPERTY_KINDS)}")
      props[name].append((kind, word))
  return parent, props


def parse_relations(text: str = RELATIONS) -> list[tuple[str, str, str]]:
  rels = []
  for block in text.strip().split("\n"):
    if not block.startswith(" "):
      verb, _, rest = block.partition(":")
    else:
      rest = block
    for pair in filter(None, (p.strip() for p in rest.split(";"))):
      x, y = pair.split()
      rels.append((x, verb.strip(), y))
  return rels


@functools.lru_cache(maxsize=1)
def english_world() -> World:
  """The world in English, validated once."""
  parent, props = parse_hierarchy()
  rels = parse_relations()
  world = World(parent, props, rels)
  words = [w for c in world.categories for _, w in world.props[c]]
  dup = sorted({w for w in words if words.count(w) > 1})
  if dup:
    raise ValueError(f"semantic hierarchy: property words used twice: {dup}")
  for x, v, y in rels:
    for c in (x, y):
      if c not in parent or not world.is_leaf(c):
        raise ValueError(
            f"semantic relation {x} {v} {y}: {c!r} is not a leaf category")
  if len(set(rels)) != len(rels):
    raise ValueError("semantic relations: duplicate entries")
  names = set(world.categories) | set(words) | set(world.verbs)
  if len(names) != len(world.categories) + len(words) + len(world.verbs):
    raise ValueError("semantic world: a word is both a category, a property"
                     " or a verb")
  return world


# ---------------------------------------------------------- relexicalizing


def _assign_words(keys: list[str], seed: int, tokenizer: str) -> dict[str, str]:
  """One nonsense lemma per English key whose surface forms never collide.

  Words whose forms equal, or end with, another kept word's forms are
  skipped: the leakage checks match by substring.
  """
  pool = vocab.make_words(len(keys) + max(40, len(keys) // 5), seed,
                          name="semantic/lexicon", tokenizer=tokenizer)
  kept_forms: set[str] = set()
  suffixes: set[str] = set()
  out: dict[str, str] = {}
  words = iter(pool)
  for key in keys:
    for w in words:
      fs = forms(w)
      if any(f in suffixes for f in fs) or any(
          f[i:] in kept_forms for f in fs for i in range(len(f) - 3)):
        continue
      kept_forms.update(fs)
      suffixes.update(f[i:] for f in fs for i in range(len(f) - 3))
      out[key] = w
      break
    else:
      raise ValueError(
          f"semantic: ran out of nonsense words after {len(out)} of"
          f" {len(keys)} (seed {seed})")
  return out


def build_world(seed: int, tokenizer: str = "") -> tuple[World, dict[str, str]]:
  """The relexicalized world and the English -> nonsense mapping.

  Keys of the mapping are "cat:NAME", "prop:WORD" and "verb:VERB".
  """
  en = english_world()
  keys = ([f"cat:{c}" for c in en.categories] +
          [f"prop:{w}" for c in en.categories for _, w in en.props[c]] +
          [f"verb:{v}" for v in en.verbs])
  # Seeded key order, so which key gets which word varies with the seed too.
  order = rng.shuffled(keys, seed, "semantic/lexicon-order")
  lex = _assign_words(order, seed, tokenizer)
  cat = lambda c: None if c is None else lex[f"cat:{c}"]
  parent = {cat(c): cat(p) for c, p in en.parent.items()}
  props = {cat(c): [(k, lex[f"prop:{w}"]) for k, w in en.props[c]]
           for c in en.categories}
  rels = [(cat(x), lex[f"verb:{v}"], cat(y)) for x, v, y in en.rels]
  return World(parent, props, rels), {k: lex[k] for k in keys}
