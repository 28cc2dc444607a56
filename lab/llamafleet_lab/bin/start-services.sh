# Stands for: $PREFIX/etc/profile.d/start-services.sh from termux-services, sourced by every
# Termux login shell (and by boot scripts that want services): exports SVDIR and LOGDIR and
# starts service-daemon (runsvdir on $SVDIR) in the background. SSH commands that are not login
# shells never source it, so on a fresh boot nothing is supervised until something does.
export SVDIR=$PREFIX/var/service
export LOGDIR=$PREFIX/var/log
(service-daemon start >/dev/null 2>&1 &)
