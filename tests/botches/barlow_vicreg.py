"""Classic mistakes in barlow_twins_loss and vicreg_loss, each with words its diagnosis must
contain."""

import torch
import torch.nn.functional as F

from tests.botches import Botch


def _bn(z, eps=1e-5):
    return (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + eps)


def _bt_from(c, lambd):
    on = (1 - torch.diagonal(c)).pow(2).sum()
    return on + lambd * (c.pow(2).sum() - torch.diagonal(c).pow(2).sum())


def bt_paper_std(z1, z2, lambd=5e-3):
    def norm(z):
        return (z - z.mean(0)) / z.std(0)
    return _bt_from(norm(z1).T @ norm(z2) / len(z1), lambd)


def bt_by_n_minus_1(z1, z2, lambd=5e-3):
    return _bt_from(_bn(z1).T @ _bn(z2) / (len(z1) - 1), lambd)


def bt_not_by_n(z1, z2, lambd=5e-3):
    return _bt_from(_bn(z1).T @ _bn(z2), lambd)


def bt_rows_l2(z1, z2, lambd=5e-3):
    return _bt_from(F.normalize(z1, dim=1).T @ F.normalize(z2, dim=1) / len(z1), lambd)


def bt_per_sample(z1, z2, lambd=5e-3):
    def norm(z):
        return (z - z.mean(1, keepdim=True)) / torch.sqrt(z.var(1, unbiased=False, keepdim=True)
                                                         + 1e-5)
    return _bt_from(norm(z1).T @ norm(z2) / len(z1), lambd)


def bt_sample_matrix(z1, z2, lambd=5e-3):
    return _bt_from(_bn(z1) @ _bn(z2).T / len(z1), lambd)


def bt_lambda_swapped(z1, z2, lambd=5e-3):
    c = _bn(z1).T @ _bn(z2) / len(z1)
    d = torch.diagonal(c)
    return lambd * (1 - d).pow(2).sum() + (c.pow(2).sum() - d.pow(2).sum())


def bt_no_lambda(z1, z2, lambd=5e-3):
    return _bt_from(_bn(z1).T @ _bn(z2) / len(z1), 1.0)


def bt_lambda_on_all(z1, z2, lambd=5e-3):
    c = _bn(z1).T @ _bn(z2) / len(z1)
    return (1 - torch.diagonal(c)).pow(2).sum() + lambd * c.pow(2).sum()


def bt_means(z1, z2, lambd=5e-3):
    c = _bn(z1).T @ _bn(z2) / len(z1)
    off = c[~torch.eye(len(c), dtype=torch.bool)]
    return (1 - torch.diagonal(c)).pow(2).mean() + lambd * off.pow(2).mean()


def bt_diag_not_squared(z1, z2, lambd=5e-3):
    c = _bn(z1).T @ _bn(z2) / len(z1)
    d = torch.diagonal(c)
    return (1 - d).abs().sum() + lambd * (c.pow(2).sum() - d.pow(2).sum())


def bt_off_not_squared(z1, z2, lambd=5e-3):
    c = _bn(z1).T @ _bn(z2) / len(z1)
    d = torch.diagonal(c)
    return (1 - d).pow(2).sum() + lambd * (c.abs().sum() - d.abs().sum())


def bt_lambda_hard_coded(z1, z2, lambd=5e-3):
    return _bt_from(_bn(z1).T @ _bn(z2) / len(z1), 5e-3)


def bt_official_default(z1, z2, lambd=0.0051):
    return _bt_from(_bn(z1).T @ _bn(z2) / len(z1), lambd)


def bt_not_centred(z1, z2, lambd=5e-3):
    def norm(z):
        return z / torch.sqrt(z.pow(2).mean(0) + 1e-5)
    return _bt_from(norm(z1).T @ norm(z2) / len(z1), lambd)


def bt_not_scaled(z1, z2, lambd=5e-3):
    return _bt_from((z1 - z1.mean(0)).T @ (z2 - z2.mean(0)) / len(z1), lambd)


def bt_joint_statistics(z1, z2, lambd=5e-3):
    both = torch.cat([z1, z2])
    mean, var = both.mean(0), both.var(0, unbiased=False)
    n1, n2 = (z1 - mean) / torch.sqrt(var + 1e-5), (z2 - mean) / torch.sqrt(var + 1e-5)
    return _bt_from(n1.T @ n2 / len(z1), lambd)


def bt_no_eps(z1, z2, lambd=5e-3):
    return _bt_from(_bn(z1, 0.0).T @ _bn(z2, 0.0) / len(z1), lambd)


def bt_eps_on_std(z1, z2, lambd=5e-3):
    def norm(z):
        return (z - z.mean(0)) / (z.std(0, unbiased=False) + 1e-5)
    return _bt_from(norm(z1).T @ norm(z2) / len(z1), lambd)


def bt_stop_gradient(z1, z2, lambd=5e-3):
    return _bt_from(_bn(z1).T @ _bn(z2.detach()) / len(z1), lambd)


def bt_in_place(z1, z2, lambd=5e-3):
    z1 = z1.sub_(z1.mean(0))
    return _bt_from(_bn(z1).T @ _bn(z2) / len(z1), lambd)


def bt_float32(z1, z2, lambd=5e-3):
    return _bt_from(_bn(z1.float()).T @ _bn(z2.float()) / len(z1), lambd)


# -- VICReg ---------------------------------------------------------------------------------------

def _parts(z1, z2, *, unbiased=True, var_unbiased=True, eps=1e-4, hinge=True, centred=True,
           diag=False, cross=False, cov_div=None, views="both"):
    n, d = z1.shape
    ddof = n - 1 if unbiased else n
    var_terms, cov_terms = [], []
    for z, other in ((z1, z2), (z2, z1)):
        c = z - z.mean(0) if centred else z
        std = torch.sqrt((z - z.mean(0)).pow(2).sum(0) / (n - 1 if var_unbiased else n) + eps)
        h = 1 - std
        var_terms.append((F.relu(h) if hinge else h).mean())
        o = other - other.mean(0)
        cov = (c.T @ (o if cross else c)) / ddof
        mask = torch.ones(d, d) if diag else 1 - torch.eye(d)
        cov_terms.append((cov.pow(2) * mask.to(cov.dtype)).sum() / (cov_div or d))
    if views == "first":
        cov_terms[1] = cov_terms[1] * 0
    return var_terms, cov_terms


def _vic(z1, z2, sim, std, cov, inv=None, var_reduce=None, cov_reduce=None, **kw):
    var_terms, cov_terms = _parts(z1, z2, **kw)
    inv = F.mse_loss(z1, z2) if inv is None else inv
    var = (var_reduce or (lambda v: (v[0] + v[1]) / 2))(var_terms)
    covariance = (cov_reduce or (lambda c: c[0] + c[1]))(cov_terms)
    return sim * inv + std * var + cov * covariance


def vic_coeffs_ignored(z1, z2, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0):
    return _vic(z1, z2, 25.0, 25.0, 1.0)


def vic_mse_summed_over_d(z1, z2, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0):
    inv = (z1 - z2).pow(2).sum(1).mean()
    return _vic(z1, z2, sim_coeff, std_coeff, cov_coeff, inv=inv)


def vic_distance(z1, z2, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0):
    inv = (z1 - z2).norm(dim=1).mean()
    return _vic(z1, z2, sim_coeff, std_coeff, cov_coeff, inv=inv)


def vic_biased_variance(z1, z2, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0):
    return _vic(z1, z2, sim_coeff, std_coeff, cov_coeff, var_unbiased=False)


def vic_cov_biased(z1, z2, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0):
    return _vic(z1, z2, sim_coeff, std_coeff, cov_coeff, unbiased=False)


def vic_hinge_on_variance(z1, z2, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0):
    var = sum(F.relu(1 - z.var(0)).mean() for z in (z1, z2)) / 2
    total = _vic(z1, z2, sim_coeff, 0.0, cov_coeff)
    return total + std_coeff * var


def vic_no_hinge(z1, z2, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0):
    return _vic(z1, z2, sim_coeff, std_coeff, cov_coeff, hinge=False)


def vic_views_summed(z1, z2, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0):
    return _vic(z1, z2, sim_coeff, std_coeff, cov_coeff, var_reduce=lambda v: v[0] + v[1])


def vic_no_eps(z1, z2, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0):
    return _vic(z1, z2, sim_coeff, std_coeff, cov_coeff, eps=0.0)


def vic_not_centred(z1, z2, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0):
    return _vic(z1, z2, sim_coeff, std_coeff, cov_coeff, centred=False)


def vic_not_by_d(z1, z2, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0):
    return _vic(z1, z2, sim_coeff, std_coeff, cov_coeff, cov_div=1)


def vic_by_pairs(z1, z2, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0):
    d = z1.shape[1]
    return _vic(z1, z2, sim_coeff, std_coeff, cov_coeff, cov_div=d * (d - 1))


def vic_cov_views_averaged(z1, z2, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0):
    return _vic(z1, z2, sim_coeff, std_coeff, cov_coeff, cov_reduce=lambda c: (c[0] + c[1]) / 2)


def vic_diagonal_included(z1, z2, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0):
    return _vic(z1, z2, sim_coeff, std_coeff, cov_coeff, diag=True)


def vic_cross_covariance(z1, z2, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0):
    return _vic(z1, z2, sim_coeff, std_coeff, cov_coeff, cross=True)


def vic_one_view(z1, z2, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0):
    return _vic(z1, z2, sim_coeff, std_coeff, cov_coeff, views="first")


def vic_stop_gradient(z1, z2, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0):
    return _vic(z1, z2.detach(), sim_coeff, std_coeff, cov_coeff)


def vic_in_place(z1, z2, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0):
    z1 = z1.sub_(0)
    return _vic(z1, z2, sim_coeff, std_coeff, cov_coeff)


def vic_float32(z1, z2, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0):
    return _vic(z1.float(), z2.float(), sim_coeff, std_coeff, cov_coeff)


_B, _V = "barlow_twins_loss", "vicreg_loss"
CATALOGUE = [
    Botch("the paper's pseudo-code std", _B, bt_paper_std, "pseudo-code"),
    Botch("C divided by N - 1", _B, bt_by_n_minus_1, "divided by N - 1"),
    Botch("C not divided by N", _B, bt_not_by_n, "not divided by the batch size"),
    Botch("rows L2-normalised", _B, bt_rows_l2, "L2-normalised along its features"),
    Botch("standardised per sample", _B, bt_per_sample, "over the feature axis"),
    Botch("N x N matrix", _B, bt_sample_matrix, "N x N"),
    Botch("lambda on the diagonal", _B, bt_lambda_swapped, "weighs the diagonal"),
    Botch("no lambda", _B, bt_no_lambda, "not multiplied by lambd"),
    Botch("lambda on every entry", _B, bt_lambda_on_all, "the diagonal included"),
    Botch("means instead of sums", _B, bt_means, "averaged over their entries"),
    Botch("diagonal not squared", _B, bt_diag_not_squared, "without squaring"),
    Botch("off-diagonal not squared", _B, bt_off_not_squared, "off-diagonal entries (or"),
    Botch("lambda hard-coded", _B, bt_lambda_hard_coded, "lambd argument is ignored"),
    Botch("the released code's default", _B, bt_official_default, "0.0051"),
    Botch("not centred", _B, bt_not_centred, "not centred"),
    Botch("not scaled", _B, bt_not_scaled, "not divided by their standard deviation"),
    Botch("statistics pooled over the views", _B, bt_joint_statistics, "pooled over both"),
    Botch("no epsilon", _B, bt_no_eps, "no epsilon"),
    Botch("epsilon on the std", _B, bt_eps_on_std, "added to the standard deviation"),
    Botch("a stop-gradient on z2", _B, bt_stop_gradient, "a view is detached"),
    Botch("centred in place", _B, bt_in_place, "in-place"),
    Botch("through float32", _B, bt_float32, "float32"),
    Botch("coefficients ignored", _V, vic_coeffs_ignored, "coefficients are ignored"),
    Botch("squared distance per sample", _V, vic_mse_summed_over_d, "sums the squared "
          "differences over the dimensions"),
    Botch("distance, not squared", _V, vic_distance, "distances between the views"),
    Botch("biased variance", _V, vic_biased_variance, "biased one"),
    Botch("biased covariance", _V, vic_cov_biased, "divided by N instead of N - 1"),
    Botch("hinge on the variance", _V, vic_hinge_on_variance, "applied to the variance"),
    Botch("no relu", _V, vic_no_hinge, "relu of the hinge is missing"),
    Botch("variance terms summed", _V, vic_views_summed, "two views are summed"),
    Botch("no epsilon", _V, vic_no_eps, "no epsilon"),
    Botch("covariance not centred", _V, vic_not_centred, "covariance is not centred"),
    Botch("covariance not divided by D", _V, vic_not_by_d, "not divided by the dimension"),
    Botch("covariance divided by D(D - 1)", _V, vic_by_pairs, "D(D - 1)"),
    Botch("covariance averaged over views", _V, vic_cov_views_averaged, "averaged instead of "
          "summed"),
    Botch("covariance with its diagonal", _V, vic_diagonal_included, "includes the diagonal"),
    Botch("cross-view covariance", _V, vic_cross_covariance, "between the two views"),
    Botch("one view's covariance", _V, vic_one_view, "one view only"),
    Botch("a stop-gradient on z2", _V, vic_stop_gradient, "a view is detached"),
    Botch("centred in place", _V, vic_in_place, "in-place"),
    Botch("through float32", _V, vic_float32, "float32"),
]
