// MuseScore 4's Settings (its own copy of Qt's QQmlSettings, registered in `MuseScore 3.0`):
// the object's own properties, kept under `category`. The values the test gives are those
// kept from an earlier run; the values at the end are reported.
import QtQml 2.15
import "../harness.js" as Harness

QtObject {
    id: settings
    property string category: ""
    property string fileName: ""

    function value(key, defaultValue) { return settings[key] === undefined ? defaultValue : settings[key]; }
    function setValue(key, value) { settings[key] = value; }
    function sync() {}

    Component.onCompleted: {
        var kept = (Harness.fixture().settings || {})[category] || {};
        for (var key in kept)
            if (settings[key] !== undefined) settings[key] = kept[key];
        Harness.settings.push(settings);
    }
}
