(function () {
  "use strict";

  // --- plotting helpers shared by the simulations -----------------------------------------
  function plotArea(ctx, width, height, xMin, xMax, yMin, yMax, xLabel, yLabel) {
    var left = 56, right = 16, top = 16, bottom = 44;
    var area = {
      x: function (v) { return left + (v - xMin) / (xMax - xMin) * (width - left - right); },
      y: function (v) { return height - bottom - (v - yMin) / (yMax - yMin) * (height - top - bottom); }
    };
    ctx.save();
    ctx.strokeStyle = "#7a8691";
    ctx.fillStyle = "#1b1f24";
    ctx.lineWidth = 1;
    ctx.font = "13px system-ui, sans-serif";
    ctx.beginPath();
    ctx.moveTo(left, top);
    ctx.lineTo(left, height - bottom);
    ctx.lineTo(width - right, height - bottom);
    ctx.stroke();
    ctx.textAlign = "center";
    for (var i = 0; i <= 4; i += 1) {
      var xv = xMin + (xMax - xMin) * i / 4;
      ctx.fillText(formatNumber(xv), area.x(xv), height - bottom + 16);
    }
    ctx.fillText(xLabel, (left + width - right) / 2, height - 8);
    ctx.textAlign = "right";
    for (var j = 0; j <= 4; j += 1) {
      var yv = yMin + (yMax - yMin) * j / 4;
      ctx.fillText(formatNumber(yv), left - 6, area.y(yv) + 4);
    }
    ctx.save();
    ctx.translate(14, (top + height - bottom) / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "center";
    ctx.fillText(yLabel, 0, 0);
    ctx.restore();
    ctx.restore();
    return area;
  }
  function curve(ctx, area, f, xMin, xMax, colour) {
    ctx.save();
    ctx.strokeStyle = colour || "#1f4e79";
    ctx.lineWidth = 2.5;
    ctx.beginPath();
    var started = false;
    for (var i = 0; i <= 200; i += 1) {
      var x = xMin + (xMax - xMin) * i / 200;
      var y = f(x);
      if (!isFinite(y)) { started = false; continue; }
      if (started) { ctx.lineTo(area.x(x), area.y(y)); } else { ctx.moveTo(area.x(x), area.y(y)); started = true; }
    }
    ctx.stroke();
    ctx.restore();
  }
  function formatNumber(v) {
    var a = Math.abs(v);
    if (a !== 0 && (a >= 10000 || a < 0.01)) { return v.toExponential(1); }
    return String(Math.round(v * 100) / 100);
  }
  var plot = { area: plotArea, curve: curve, format: formatNumber };

  // --- the parameter-slider simulation ----------------------------------------------------
  var simulation = document.getElementById("simulation");
  if (simulation && typeof window.maicSimulation === "function") {
    var canvas = document.getElementById("sim-canvas");
    var readout = document.getElementById("sim-readout");
    var sliders = simulation.querySelectorAll("input[type=range]");
    var redraw = function () {
      var values = {};
      sliders.forEach(function (slider) {
        values[slider.name] = parseFloat(slider.value);
        var out = document.getElementById(slider.id + "-out");
        if (out) { out.value = slider.value + (slider.dataset.unit ? " " + slider.dataset.unit : ""); }
      });
      var ctx = canvas.getContext("2d");
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      readout.textContent = window.maicSimulation(ctx, canvas.width, canvas.height, values, plot);
    };
    sliders.forEach(function (slider) { slider.addEventListener("input", redraw); });
    redraw();
  }

  // --- step-through procedures ------------------------------------------------------------
  document.querySelectorAll(".procedure").forEach(function (procedure) {
    var steps = procedure.querySelectorAll(".step");
    var counter = procedure.querySelector(".step-counter");
    var prev = procedure.querySelector(".prev");
    var next = procedure.querySelector(".next");
    var current = 0;
    var show = function (index) {
      current = Math.max(0, Math.min(steps.length - 1, index));
      steps.forEach(function (step, i) { step.hidden = i !== current; });
      counter.textContent = "Step " + (current + 1) + " of " + steps.length;
      prev.disabled = current === 0;
      next.disabled = current === steps.length - 1;
    };
    prev.addEventListener("click", function () { show(current - 1); });
    next.addEventListener("click", function () { show(current + 1); });
    show(0);
  });

  // --- concept map: a node or a concept button shows its definition ---------------------------
  var detail = document.getElementById("concept-detail");
  var explain = function (source) {
    var concept = source.getAttribute("data-concept");
    var text = source.getAttribute("data-definition");
    detail.textContent = concept + ": " + text;
    document.querySelectorAll(".node").forEach(function (node) {
      node.classList.toggle("selected", node.getAttribute("data-concept") === concept);
    });
  };
  document.querySelectorAll("[data-concept]").forEach(function (source) {
    source.addEventListener("click", function () { explain(source); });
  });

  // --- quiz with feedback ---------------------------------------------------------------------
  var score = document.getElementById("quiz-score");
  var answered = 0, right = 0;
  document.querySelectorAll(".question").forEach(function (question) {
    var feedback = question.querySelector(".feedback");
    var options = question.querySelectorAll(".option");
    var done = false;
    options.forEach(function (option) {
      option.addEventListener("click", function () {
        var correct = option.getAttribute("data-correct") === "true";
        options.forEach(function (other) { other.setAttribute("aria-pressed", String(other === option)); });
        option.classList.add(correct ? "correct" : "wrong");
        feedback.className = "feedback " + (correct ? "correct" : "wrong");
        feedback.textContent = correct
          ? "Correct! " + question.getAttribute("data-explanation")
          : "Not quite. " + question.getAttribute("data-explanation");
        if (!done) {
          done = true;
          answered += 1;
          if (correct) { right += 1; }
          if (score) { score.textContent = "Score: " + right + " of " + answered + " answered correctly"; }
        }
      });
    });
  });
})();
