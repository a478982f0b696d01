// First-order reaction: concentration C(t) = C0 exp(-k t); half-life ln 2 / k.
window.maicSimulation = function (ctx, width, height, p, plot) {
  var k = p.rate, c0 = p.initial;
  var area = plot.area(ctx, width, height, 0, 20, 0, 2, "time (s)", "concentration (mol/L)");
  plot.curve(ctx, area, function (t) { return c0 * Math.exp(-k * t); }, 0, 20, "#8250df");
  var halfLife = Math.log(2) / k;
  return "Half-life " + plot.format(halfLife) + " s; after 20 s the concentration is " +
    plot.format(c0 * Math.exp(-k * 20)) + " mol/L";
};
