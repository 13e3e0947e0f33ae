// Element types, read by plug-ins as `Element.CHORD`. MuseScore 4 exposes them as a property
// named Element of the plug-in's root object (QML cannot declare a property whose name starts
// with a capital letter), MuseScore 3 as a type: either way the plug-in's lookup is the same.
// The numbers match score.js's TYPES.
import QtQml 2.15

QtObject {
    enum Type {
        NOTE = 20,
        REST = 25,
        HARMONY = 48,
        TIE = 86,
        MEASURE = 88,
        SEGMENT = 89,
        TUPLET = 91,
        CHORD = 93
    }
}
