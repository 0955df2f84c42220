## Background music for "Autumn Letters", made with:
##     musedraft pack examples/vn_bgm_pack/scenes.toml --out bgm/
## Open bgm/index.html, pick one candidate per scene, then copy the bgm/ folder into your
## project's game/audio/ folder and drop this file into game/.
##
## Every looping OGG is exactly one loop long and its loop starts at 0 seconds, so the
## "<loop 0>" prefix makes Ren'Py jump back to the start with no gap. (Ren'Py reads loop points
## in seconds; the same points are in each draft.json and in the OGG's LOOPSTART/LOOPLENGTH tags.)

define audio.school_morning = "<loop 0>audio/bgm/school_morning/seed-0/draft.ogg"
define audio.rainy_goodbye = "<loop 0>audio/bgm/rainy_goodbye/seed-1/draft.ogg"
define audio.festival_night = "<loop 0>audio/bgm/festival_night/seed-7/draft.ogg"
## the ending cue is not a loop: it plays once and stops on its cadence
define audio.the_letter = "audio/bgm/the_letter/seed-0/draft.ogg"

label start:
    ## the music channel loops by default; fade between scenes instead of cutting
    play music school_morning fadein 1.0
    "The bell rings. Another ordinary morning."

    play music rainy_goodbye fadeout 1.0 fadein 2.0
    "It started to rain the day she left."

    ## the same thing from Python, e.g. inside a screen action or a callback
    $ renpy.music.play(audio.festival_night, channel="music", loop=True, fadeout=1.0, fadein=1.0)
    "Lanterns everywhere. The whole town came out."

    play music the_letter noloop fadeout 1.0
    "I still have the letter."

    stop music fadeout 3.0
    return
