"""The made-up world's ingredients: name syllables, traits, roles, settings, goals, obstacles."""

from __future__ import annotations

# Names are two or three open syllables, the last one sometimes closed: Tamiro, Kelun, Sava.
ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "h", "j"]
ONSETS += ["br", "dr", "tr", "th", "sh", ""]
VOWELS = ["a", "e", "i", "o", "u", "a", "e", "o"]
CODAS = ["", "", "n", "r", "l", "s", "m"]

TRAITS = [
    "stubborn", "shy", "curious", "restless", "careful", "quick-tempered", "gentle", "proud",
    "clever", "anxious", "cheerful", "patient", "forgetful", "bold", "soft-spoken", "eager",
]  # fmt: skip
ROLES = [
    "baker", "clockmaker", "ferry pilot", "beekeeper", "mapmaker", "glassblower", "shepherd",
    "apprentice healer", "lamp keeper", "weaver", "archivist", "courier", "blacksmith",
    "gardener", "fisher", "schoolteacher",
]  # fmt: skip

# A setting is a phrase read after "in" plus specific details the story can mention.
SETTINGS: dict[str, tuple[str, ...]] = {
    "a fishing village on a windy coast": (
        "the salt-stiff nets", "the crooked harbour wall", "the gulls on the roofs",
        "the smell of tar and brine"),
    "a mountain monastery above the clouds": (
        "the prayer bells", "the icy stone stairs", "the thin cold air", "the old cedar gate"),
    "a desert caravan town": (
        "the dust-red awnings", "the camel yard", "the dry stone well", "the spice stalls"),
    "a floating market on a wide brown river": (
        "the rocking plank bridges", "the fruit boats", "the muddy landing", "the river horns"),
    "a mining town deep in the hills": (
        "the coal-black chimneys", "the pit wheel", "the miners' chapel", "the slag heaps"),
    "an island where every hill has a lighthouse": (
        "the turning beams", "the cliff paths", "the fog horns", "the keepers' cottages"),
    "a city of canals and humpbacked bridges": (
        "the green canal water", "the gondola sheds", "the mossy steps", "the lamplit arches"),
    "a settlement built high in the treetops": (
        "the rope walkways", "the lantern moss", "the swaying platforms", "the rain barrels"),
    "a frozen trading post in the far north": (
        "the fur stalls", "the dog sleds", "the smoking ice holes", "the long blue twilight"),
    "an orchard valley at harvest time": (
        "the apple carts", "the cider press", "the bee-loud hedges", "the ladders in the trees"),
    "a clocktower city that never sleeps": (
        "the ticking towers", "the brass gears in the square", "the night trams",
        "the chiming hours"),
    "a salt-marsh hamlet at the edge of the sea": (
        "the reed beds", "the tide bell", "the heron pools", "the plank causeway"),
    "a hilltop vineyard above a sleepy lake": (
        "the terraced vines", "the wine cellar", "the lake ferry", "the stone press house"),
    "a railway junction on the open plains": (
        "the signal box", "the water tower", "the rattling goods wagons", "the endless grass"),
    "a library city carved into a cliff": (
        "the reading caves", "the rope lifts", "the dusty ledgers", "the carved stairways"),
    "a glassworks quarter in an old port": (
        "the roaring furnaces", "the coloured shards", "the quay cranes", "the cooling racks"),
    "a nomad camp on the windy steppe": (
        "the felt tents", "the horse lines", "the evening fires", "the eagle perches"),
    "a volcanic island village": (
        "the black sand", "the steaming springs", "the lava fields", "the banana groves"),
    "a quiet university town": (
        "the ivy-covered halls", "the bicycle racks", "the old observatory",
        "the riverside meadow"),
    "a walled market town in the lowlands": (
        "the cobbled square", "the wool hall", "the town gate", "the windmills"),
}  # fmt: skip

GOALS = [
    "win the yearly lantern contest", "find a missing younger brother",
    "deliver a sealed letter to the old governor", "bake a cake fit for a royal visit",
    "rebuild a grandmother's ruined workshop", "learn the song that opens the old gate",
    "map the caves beneath the town", "return a stolen bell to its tower",
    "grow a rare blue rose", "finish a patchwork quilt before the festival",
    "catch the thief who steals the town's clocks", "earn a place in the travelling circus",
    "save the family orchard from being sold", "build a boat that can cross the lake",
    "teach a stubborn goat to pull a cart", "make peace between two feuding sisters",
    "bring medicine to a sick friend across the valley", "decode a letter written in cipher",
    "open a small tea shop", "find the source of a strange humming at night",
    "photograph a rare white owl", "pass the examination for the engineers' guild",
    "write a play for the midsummer festival", "recover a painting lost in a fire",
    "tame a runaway horse",
]  # fmt: skip

# An obstacle is a past-tense clause (read after "but") and a short noun phrase for it.
OBSTACLES: dict[str, str] = {
    "a storm washed out the only road": "the flooded road",
    "a rival swore to get there first": "the rival",
    "the money ran out halfway": "the empty purse",
    "an old injury flared up again": "the old injury",
    "the town council banned it outright": "the council's ban",
    "a jealous cousin spread lies about it": "the cousin's lies",
    "the only map burned in a fire": "the lost map",
    "a fever kept everyone indoors": "the fever",
    "the most important tools were stolen": "the missing tools",
    "a heavy snowfall buried every path": "the snow",
    "nobody believed it could be done": "the doubt of the whole town",
    "the deadline was only three days away": "the deadline",
    "a fear of heights made every climb a torment": "the fear of heights",
    "the bridge collapsed in the night": "the broken bridge",
    "a powerful merchant wanted the same prize": "the merchant",
    "the instructions were written in a forgotten language": "the forgotten language",
}
