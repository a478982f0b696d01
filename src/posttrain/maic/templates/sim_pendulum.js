// A simple pendulum (small swings): period T = 2 pi sqrt(L / g); the plot shows its angle
// over ten seconds, released from 15 degrees.
window.maicSimulation = function (ctx, width, height, p, plot) {
  var period = 2 * Math.PI * Math.sqrt(p.length / p.gravity);
  var omega = 2 * Math.PI / period;
  var area = plot.area(ctx, width, height, 0, 10, -20, 20, "time (s)", "angle (degrees)");
  plot.curve(ctx, area, function (t) { return 15 * Math.cos(omega * t); }, 0, 10, "#1f4e79");
  // the pendulum itself, drawn at its release angle in the top-right corner
  var pivotX = width - 70, pivotY = 24, rod = 20 + 14 * p.length;
  var bobX = pivotX + rod * Math.sin(15 * Math.PI / 180);
  var bobY = pivotY + rod * Math.cos(15 * Math.PI / 180);
  ctx.strokeStyle = "#1b1f24";
  ctx.lineWidth = 2;
  ctx.beginPath();
  ctx.moveTo(pivotX - 20, pivotY);
  ctx.lineTo(pivotX + 20, pivotY);
  ctx.moveTo(pivotX, pivotY);
  ctx.lineTo(bobX, bobY);
  ctx.stroke();
  ctx.fillStyle = "#b35900";
  ctx.beginPath();
  ctx.arc(bobX, bobY, 8, 0, 2 * Math.PI);
  ctx.fill();
  return "Period " + plot.format(period) + " s, frequency " + plot.format(1 / period) +
    " Hz (" + plot.format(10 / period) + " swings in 10 s)";
};
