// Stand-in for MuseScore 4's plug-in root type (PluginAPI, src/engraving/api/v1/qmlpluginapi.h),
// for running a plug-in under Qt 6's own `qml` runtime as MuseScore 4 runs it: the dialog is
// built, then `run` is emitted. Its members are PluginAPI's (less the enumerations a plug-in
// does not need); nothing else is visible to the plug-in. Inside, hidden from the plug-in's
// scope, a driver plays the musician: it clicks Continue (or script.button), may edit the score while the answer
// is on its way, waits for the dialog to settle, clicks Close, and reports everything to the
// test's broker.
import QtQuick 2.15
import "score.js" as Model
import "../harness.js" as Harness

Item {
    id: api

    property string menuPath: ""
    property string title: ""
    property string version: ""
    property string description: ""
    property string pluginType: ""
    property string dockArea: ""
    property bool requiresScore: true
    property string thumbnailName: ""
    property string categoryCode: ""
    readonly property int division: Model.DIVISION
    readonly property int mscoreVersion: 40500
    readonly property int mscoreMajorVersion: 4
    readonly property int mscoreMinorVersion: 5
    readonly property int mscoreUpdateVersion: 0
    readonly property real mscoreDPI: 96
    readonly property var curScore: hidden.score

    signal run()
    signal closeRequested()
    signal scoreStateChanged(var state)

    function newElement(type) { return Model.newElement(hidden.model, type); }
    function removeElement(element) { Model.removeElement(hidden.model, element); }
    function cmd(name) {
        Harness.record("cmd", [name]);
        if (name === "select-all")
            hidden.model.selection = { startTick: 0, endTick: hidden.model.end(), startStaff: 0,
                                       endStaff: hidden.model.staves.length };
    }
    function fraction(numerator, denominator) {
        Harness.record("fraction", [numerator, denominator]);
        return Model.fractionWrapper(numerator, denominator);
    }
    function quit() {
        Harness.record("quit", []);
        closeRequested();
        hidden.closed = true;
    }
    function newScore(name, part, measures) { Harness.record("newScore", [name]); return null; }
    function newQProcess() { Harness.record("newQProcess", []); return null; }      // not implemented in 4.x
    function writeScore(score, name, ext) { Harness.record("writeScore", [name, ext]); return false; }   // idem
    function readScore(name, noninteractive) { Harness.record("readScore", [name]); return null; }
    function closeScore(score) { Harness.record("closeScore", []); }
    function log(text) { console.log(text); }
    function logn(text) { console.log(text); }
    function log2(text, text2) { console.log(text, text2); }
    function openLog(name) {}
    function closeLog() {}

    QtObject {
        id: hidden
        property var model: new Model.Model(Harness.fixture().score)
        property var score: Model.scoreWrapper(model)
        property var script: Harness.fixture().script || {}
        property int step: 0
        property bool sawWorking: false
        property bool closed: false
        property real since: Date.now()
        property real clicked: 0
        property var seen: []

        function items(item, found) {
            found.push(item);
            for (var i = 0; i < item.children.length; i++) items(item.children[i], found);
            return found;
        }
        function texts() {
            var found = items(api, []), out = [];
            for (var i = 0; i < found.length; i++)
                if (found[i].text !== undefined && typeof found[i].text === "string" && found[i].text !== "")
                    out.push(found[i].text);
            return out;
        }
        // The mouse area of the button labelled `label`.
        function button(label) {
            var found = items(api, []);
            for (var i = 0; i < found.length; i++) {
                if (found[i].text !== label || !found[i].parent) continue;
                var siblings = found[i].parent.children;
                for (var k = 0; k < siblings.length; k++)
                    if (siblings[k].pressed !== undefined && siblings[k].clicked !== undefined) return siblings[k];
            }
            return null;
        }
        function click(label) {
            var area = button(label);
            Harness.record("driver.click", [label, !!area]);
            if (area) area.clicked(null);
        }
        function settingsValues() {
            var out = [];
            for (var i = 0; i < Harness.settings.length; i++) {
                var s = Harness.settings[i], values = {};
                for (var key in s)
                    if (["string", "number", "boolean"].indexOf(typeof s[key]) >= 0 && key !== "objectName")
                        values[key] = s[key];
                out.push(values);
            }
            return out;
        }
        function report(reason) {
            Harness.ask("POST", "/report", { reason: reason, texts: texts(), seen: seen, calls: Harness.calls,
                                             score: model.dump(), settings: settingsValues() });
            Qt.quit();
        }
        function tick() {
            var waited = Date.now() - since;
            if (waited > (script.timeout_s || 240) * 1000) {
                driver.stop();
                return report("timeout");
            }
            if (step === 0) {                                   // the dialog is built: run
                step = 1;
                api.run();
            } else if (step === 1) {
                step = script.click ? 2 : 3;
                clicked = Date.now();
                if (script.click) click(script.button || "Continue");
                if (script.edit) Model.userEdit(model, script.edit);
            } else if (step === 2) {                            // until the dialog settles
                var now = texts();
                for (var i = 0; i < now.length; i++)
                    if (seen.indexOf(now[i]) < 0) seen.push(now[i]);
                if (button("Working…")) sawWorking = true;
                else if (sawWorking || Date.now() - clicked > 2000) step = 3;
            } else if (step === 3) {
                step = 4;
                if (script.close) click("Close");
            } else {
                driver.stop();
                report(closed ? "closed" : "done");
            }
        }
    }

    Timer {
        id: driver
        interval: 50
        repeat: true
        running: true
        onTriggered: hidden.tick()
    }
}
