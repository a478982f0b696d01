// Projectile motion without air resistance: x = v cos(a) t, y = v sin(a) t - g t^2 / 2.
window.maicSimulation = function (ctx, width, height, p, plot) {
  var g = 9.81;
  var a = p.angle * Math.PI / 180;
  var vx = p.speed * Math.cos(a), vy = p.speed * Math.sin(a);
  var flight = 2 * vy / g;
  var range = vx * flight;
  var peak = vy * vy / (2 * g);
  var area = plot.area(ctx, width, height, 0, 170, 0, 85, "distance (m)", "height (m)");
  plot.curve(ctx, area, function (x) {
    var t = x / vx;
    return t <= flight ? vy * t - g * t * t / 2 : NaN;
  }, 0, range, "#1f4e79");
  ctx.fillStyle = "#b35900";
  ctx.beginPath();
  ctx.arc(area.x(range / 2), area.y(peak), 5, 0, 2 * Math.PI);
  ctx.fill();
  return "Range " + plot.format(range) + " m, maximum height " + plot.format(peak) +
    " m, flight time " + plot.format(flight) + " s";
};
