// The test harness behind the stand-ins: one instance for the whole QML engine.
//
// Everything outside the QML engine goes through the test's broker (an HTTP server in the
// pytest process, its address the last command-line argument): the score to load, the files
// FileIO reads, the programs QProcess starts, and the final report. Every call the plug-in
// makes on a stand-in is recorded here.
.pragma library

var calls = [];
var settings = [];
var cache = null;

function brokerUrl() {
    var args = Qt.application.arguments;
    return args[args.length - 1];
}

// A synchronous request to the broker; its JSON answer.
function ask(method, path, body) {
    var xhr = new XMLHttpRequest();
    xhr.open(method, brokerUrl() + path, false);
    xhr.setRequestHeader("Content-Type", "application/json");
    xhr.send(body === undefined ? null : JSON.stringify(body));
    if (xhr.status !== 200)
        throw new Error("broker " + path + ": HTTP " + xhr.status + " " + xhr.responseText);
    return JSON.parse(xhr.responseText);
}

// {score, settings, script}: what this run is about.
function fixture() {
    if (!cache)
        cache = ask("GET", "/fixture");
    return cache;
}

// Record one call (or property write) the plug-in made.
function record(what, args) {
    var plain = [];
    for (var i = 0; args && i < args.length; i++) {
        var a = args[i];
        plain.push(a && typeof a === "object" && a.__describe ? a.__describe() : a);
    }
    calls.push({ call: what, args: plain });
}
